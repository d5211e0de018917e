/**
 * Random fill (benchmark models made on the device, so that no checkpoint has to
 * travel): out[i] = scale * (2u - 1) with u uniform in [0, 1) from a counter-based
 * hash of (seed, i) (murmur3's 32-bit finaliser over i * golden ratio ^ seed), so
 * any element can be reproduced alone, on the host too (`uniformAt`). Each thread
 * writes 8 consecutive elements.
 */
import { blockDim, blockIdx, convert, f32, threadIdx, u32, type Float16, type Global, type i32 } from '../dsl/index.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { defineKernel } from '../spec/define-kernel.js';
import type { DType } from '../spec/matrix.js';

export interface RandomSpec {
  readonly dtype: DType;
}

const PER_THREAD = 8;
const THREADS = 256;

function mix(i: i32, seed: u32): u32 {
  let x: u32 = (u32(i) * u32(0x9e3779b9)) ^ seed;
  x = x ^ (x >>> 16);
  x = x * u32(0x85ebca6b);
  x = x ^ (x >>> 13);
  x = x * u32(0xc2b2ae35);
  return x ^ (x >>> 16);
}

export function fillUniform<T extends Float16>(_spec: RandomSpec, out: Global<T>, n: i32, seed: u32, scale: f32): void {
  const start = (blockIdx.x * blockDim.x + threadIdx.x) * PER_THREAD;
  for (let k = 0; k < PER_THREAD; k++) {
    const i = start + k;
    if (i < n) {
      // The top 24 bits times 2^-24: exactly representable in f32.
      const u = f32(mix(i, seed) >>> 8) * 5.9604644775390625e-8;
      out[i] = convert<T>((2 * u - 1) * scale);
    }
  }
}

/** The kernel's value of element `i`, computed on the host (before rounding to the dtype). */
export function uniformAt(i: number, seed: number, scale: number): number {
  let x = (Math.imul(i, 0x9e3779b9) ^ seed) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x = (x ^ (x >>> 13)) >>> 0;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  const u = Math.fround((x >>> 8) * 5.9604644775390625e-8);
  return Math.fround(Math.fround(Math.fround(2 * u) - 1) * Math.fround(scale));
}

export const fillUniformKernel = defineKernel<RandomSpec>({
  family: 'fill_uniform',
  summary: 'out = scale * (2u - 1), u from a hash of (seed, index): random weights made on the device (benchmark models)',
  source: import.meta.url,
  kernel: fillUniform,
  name: (s) => `fill_uniform_${s.dtype}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => THREADS,
  grid: () => [ceilDiv(arg('n'), PER_THREAD * THREADS), 1, 1],
  specs: (m) => m.dtype.map((dtype) => ({ dtype })),
  unitKey: (s) => s.dtype,
});
