/** A float64 oracle for the decode products (stream_gemm, gemv): x [m, k] @ w [n, k]^T. */
import { expect } from 'vitest';
import type { DType } from '../spec/matrix.js';
import { EPS } from './compare.js';

/** The product in f64, and sum |x| |w| per element (the scale of its rounding error). */
function reference(x: Float32Array, w: Float32Array, m: number, n: number, k: number): { value: Float64Array; scale: Float64Array } {
  const value = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let a = 0;
      for (let i = 0; i < k; i++) {
        s += x[r * k + i] * w[j * k + i];
        a += Math.abs(x[r * k + i] * w[j * k + i]);
      }
      value[r * n + j] = s;
      scale[r * n + j] = a;
    }
  }
  return { value, scale };
}

/** Every element within the output type's rounding (half an ulp) plus f32 accumulation error. */
export function expectProduct(got: Float32Array, x: Float32Array, w: Float32Array, m: number, n: number, k: number, out: DType | 'f32'): void {
  const { value, scale } = reference(x, w, m, n, k);
  let worst = -1;
  let excess = 0;
  for (let i = 0; i < value.length; i++) {
    const allowed = EPS[out] * Math.abs(value[i]) * 1.01 + 2 ** -20 * scale[i];
    const err = Math.abs(got[i] - value[i]) - allowed;
    if (!(err <= 0) && (worst < 0 || err > excess || Number.isNaN(err))) {
      worst = i;
      excess = err;
    }
  }
  if (worst >= 0) expect.fail(`element ${worst} (row ${Math.floor(worst / n)}): got ${got[worst]}, expected ${value[worst]}`);
}

/** Rows `picks` of a row-major matrix of `width` columns, as one list. */
export const rows = (a: Float32Array, width: number, picks: readonly number[]): number[] =>
  picks.flatMap((r) => Array.from(a.subarray(r * width, (r + 1) * width)));
