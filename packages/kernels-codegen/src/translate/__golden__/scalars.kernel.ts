// Golden fixture: scalar types, literals, conversions, folding and compile-time branches.
import { blockIdx, convert, f32, floatBits, i32, i64, rsqrt, threadIdx, u32, type Float16, type Global, type GlobalIn } from '../../dsl/index.js';

export interface ScalarsSpec {
  readonly mode: 'fast' | 'exact';
  readonly width: number;
  readonly tile: { readonly rows: number };
}

type Acc = f32;
const HALF = 0.5;

export function scalars<T extends Float16>(spec: ScalarsSpec, x: GlobalIn<T>, out: Global<T>, bits: Global<u32>, n: i32, alpha: f32): void {
  const i = blockIdx.x * spec.width + threadIdx.x;
  if (i >= n) return;
  // Loads of 16-bit floats convert explicitly; literals adapt to the other operand.
  const v: Acc = f32(x[i]) * alpha + 1;
  let y = v * HALF;
  if (spec.mode === 'fast') {
    y = y * rsqrt(v * v + 1e-6);
  } else {
    y = y / Math.sqrt(v * v + 0.000001);
  }
  const big = i64(i) * (spec.tile.rows * 1024);
  const u = u32(i) * 2654435761;
  bits[i] = (u >>> 7) ^ (floatBits(y) & 0xff) ^ u32(big % 7);
  const clamped = Math.min(Math.max(y, -Infinity), 65504.0);
  out[i] = convert<T>(i % 2 === 0 ? clamped : -clamped);
  const q = i32(y) / 3 + (-7 >> 1) + (n >>> 1);
  if (q > 100 && !(y < 0)) out[i + 1] = convert<T>(q);
}
