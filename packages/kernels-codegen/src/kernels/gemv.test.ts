import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { quantize } from '../test-support/compare.js';
import { expectProduct, rows } from '../test-support/products.js';
import { Rng } from '../test-support/random.js';
import type { DType } from '../spec/matrix.js';
import { gemvKernel, gemvShapeError } from './gemv.kernel.js';

/** out [m, n] of x [m, k] @ w [n, k]^T through gemv made for `spec` rows (1 or 4). */
function gemv(dtype: DType, out: DType | 'f32', specRows: 1 | 4, x: Float32Array, w: Float32Array, m: number, n: number, k: number): Float32Array {
  // Poisoned past m rows: the kernel must write exactly out[0 .. m * n).
  const result = new EmuBuffer(out, (m + 1) * n).fill(Number.NaN);
  emulateKernel(gemvKernel, { dtype, out, rows: specRows }).run({ x: EmuBuffer.from(dtype, x), w: EmuBuffer.from(dtype, w), out: result, m, n, k });
  const all = result.toFloat32();
  expect(all.subarray(m * n).every(Number.isNaN), 'nothing written past row m').toBe(true);
  return all.subarray(0, m * n);
}

describe('gemv (a warp per weight row) matches a float64 product', () => {
  it.each([
    // k = 2048: two passes of four instructions, no single ones.
    { dtype: 'f16', out: 'f16', rows: 1, m: 1, n: 24, k: 2048 },
    // k = 1304: one pass of four, then single instructions (the last one partial across the lanes).
    { dtype: 'bf16', out: 'f32', rows: 4, m: 3, n: 9, k: 1304 },
    // k below one instruction's 256 elements: most lanes have nothing; n not a multiple of a block's 8.
    { dtype: 'f16', out: 'f32', rows: 4, m: 4, n: 13, k: 40 },
    { dtype: 'bf16', out: 'bf16', rows: 4, m: 2, n: 17, k: 776 },
  ] as const)('$dtype -> $out, made for $rows, m $m, n $n, k $k', ({ dtype, out, rows: specRows, m, n, k }) => {
    const rng = new Rng(3 + m + k);
    const x = quantize(rng.array(m * k, -1, 1), dtype);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    expectProduct(gemv(dtype, out, specRows, x, w, m, n, k), x, w, m, n, k, out);
  });
});

describe('gemv is row-invariant: a row gets the same bits whatever m is, whatever the other rows hold, in either specialisation', () => {
  it.each([
    { dtype: 'f16', out: 'f16', n: 11, k: 1288 },
    { dtype: 'bf16', out: 'f32', n: 8, k: 264 },
  ] as const)('$dtype -> $out, n $n, k $k', ({ dtype, out, n, k }) => {
    const rng = new Rng(29);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    const x = quantize(rng.array(4 * k, -1, 1), dtype);
    const four = gemv(dtype, out, 4, x, w, 4, n, k);
    // The one-row kernel on row 0, and the four-row kernel on row 0 alone.
    expect(Array.from(gemv(dtype, out, 1, x.subarray(0, k), w, 1, n, k))).toEqual(rows(four, n, [0]));
    expect(Array.from(gemv(dtype, out, 4, x.subarray(0, k), w, 1, n, k))).toEqual(rows(four, n, [0]));
    // m = 3: rows 0 and 2 of the four, row 1 replaced by other values.
    const three = Float32Array.from([...rows(x, k, [0]), ...quantize(rng.array(k, -4, 4), dtype), ...rows(x, k, [2])]);
    expect(rows(gemv(dtype, out, 4, three, w, 3, n, k), n, [0, 2])).toEqual(rows(four, n, [0, 2]));
  });
});

describe('gemvShapeError', () => {
  it('refuses rows or k it does not take, saying why', () => {
    expect(gemvShapeError(4, 4096, 4096)).toBeUndefined();
    expect(gemvShapeError(1, 13, 40)).toBeUndefined();
    expect(gemvShapeError(5, 4096, 4096)).toBe('gemv: m = 5 rows, must be 1..4');
    expect(gemvShapeError(0, 4096, 4096)).toBe('gemv: m = 0 rows, must be 1..4');
    expect(gemvShapeError(1, 0, 4096)).toBe('gemv: n = 0 features, must be positive');
    expect(gemvShapeError(1, 4096, 4100)).toBe('gemv: k = 4100, must be a positive multiple of 8');
  });
});
