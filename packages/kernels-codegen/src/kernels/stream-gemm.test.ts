import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { quantize } from '../test-support/compare.js';
import { expectProduct, rows } from '../test-support/products.js';
import { Rng } from '../test-support/random.js';
import type { DType } from '../spec/matrix.js';
import { streamGemmKernel, streamGemmShapeError, streamGemmTiles, type StreamGemmTiles } from './stream-gemm.kernel.js';

type Tiles = { readonly mTiles: StreamGemmTiles; readonly nTiles: StreamGemmTiles };

/** out [m, n] of x [m, k] @ w [n, k]^T through stream_gemm made for `tiles` (by default streamGemmTiles(m)). */
function streamGemm(
  dtype: DType,
  out: DType | 'f32',
  x: Float32Array,
  w: Float32Array,
  m: number,
  n: number,
  k: number,
  tiles: Tiles = streamGemmTiles(m),
): Float32Array {
  // Poisoned past m rows: the kernel must write exactly out[0 .. m * n).
  const result = new EmuBuffer(out, (m + 1) * n).fill(Number.NaN);
  emulateKernel(streamGemmKernel, { dtype, out, ...tiles }).run({ x: EmuBuffer.from(dtype, x), w: EmuBuffer.from(dtype, w), out: result, m, n, k });
  const all = result.toFloat32();
  expect(all.subarray(m * n).every(Number.isNaN), 'nothing written past row m').toBe(true);
  return all.subarray(0, m * n);
}

describe('stream_gemm (weights straight into mma fragments, k permuted within 32) matches a float64 product', () => {
  it.each([
    // k = 512: 16 chunks, 2 a warp (one pass of 2 at n-tiles 4, single chunks at 1 and 2).
    { dtype: 'f16', out: 'f16', m: 1, n: 24, k: 512, tiles: { mTiles: 1, nTiles: 2 } },
    { dtype: 'f16', out: 'f32', m: 3, n: 40, k: 512, tiles: { mTiles: 1, nTiles: 4 } },
    // k = 1056: 33 chunks, 5 a warp and 4 short of them in the last warp (a pass of 4 and a single one).
    { dtype: 'bf16', out: 'bf16', m: 17, n: 20, k: 1056, tiles: { mTiles: 2, nTiles: 1 } },
    // k below the warps: 3 chunks, so warps 3..7 have none; n short of one n-tile.
    { dtype: 'bf16', out: 'f32', m: 40, n: 5, k: 96, tiles: { mTiles: 4, nTiles: 1 } },
    { dtype: 'f16', out: 'f16', m: 64, n: 36, k: 256, tiles: { mTiles: 4, nTiles: 4 } },
  ] as const)('$dtype -> $out, m $m, n $n, k $k, tiles $tiles.mTiles x $tiles.nTiles', ({ dtype, out, m, n, k, tiles }) => {
    const rng = new Rng(7 + m + k);
    const x = quantize(rng.array(m * k, -1, 1), dtype);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    expectProduct(streamGemm(dtype, out, x, w, m, n, k, tiles), x, w, m, n, k, out);
  });
});

describe('stream_gemm is row-invariant: a row gets the same bits whatever m is, whatever the other rows hold, and whatever tiles the kernel has', () => {
  it.each([
    { dtype: 'f16', out: 'f16', n: 24, k: 320 },
    { dtype: 'bf16', out: 'f32', n: 9, k: 288 },
  ] as const)('$dtype -> $out, n $n, k $k', ({ dtype, out, n, k }) => {
    const rng = new Rng(31);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    const x = quantize(rng.array(64 * k, -1, 1), dtype);
    const all = streamGemm(dtype, out, x, w, 64, n, k);
    // m = 1 with every n-tile count, and m = 1 through the kernel made for 64 rows.
    for (const nTiles of [1, 2, 4] as const) {
      expect(Array.from(streamGemm(dtype, out, x.subarray(0, k), w, 1, n, k, { mTiles: 1, nTiles }))).toEqual(rows(all, n, [0]));
    }
    expect(Array.from(streamGemm(dtype, out, x.subarray(0, k), w, 1, n, k, { mTiles: 4, nTiles: 2 }))).toEqual(rows(all, n, [0]));
    // m = 3: rows 0 and 2 of the 64, row 1 replaced by other values.
    const three = Float32Array.from([...rows(x, k, [0]), ...quantize(rng.array(k, -4, 4), dtype), ...rows(x, k, [2])]);
    expect(rows(streamGemm(dtype, out, three, w, 3, n, k), n, [0, 2])).toEqual(rows(all, n, [0, 2]));
    // m = 33: rows 3..31 changed; row 32 sits alone in the third m-tile.
    const many = Float32Array.from(x.subarray(0, 33 * k));
    many.set(quantize(rng.array(29 * k, -2, 2), dtype), 3 * k);
    expect(rows(streamGemm(dtype, out, many, w, 33, n, k), n, [0, 1, 2, 32])).toEqual(rows(all, n, [0, 1, 2, 32]));
  });
});

describe('streamGemmTiles and the shapes stream_gemm takes', () => {
  it('takes the fewest m-tiles that hold m, and 1 n-tile up to 16 rows and 4 beyond', () => {
    expect([1, 16, 17, 32, 33, 64].map((m) => streamGemmTiles(m))).toEqual([
      { mTiles: 1, nTiles: 1 },
      { mTiles: 1, nTiles: 1 },
      { mTiles: 2, nTiles: 4 },
      { mTiles: 2, nTiles: 4 },
      { mTiles: 4, nTiles: 4 },
      { mTiles: 4, nTiles: 4 },
    ]);
  });

  it('refuses rows or k it does not take, saying why', () => {
    expect(streamGemmShapeError(64, 4096, 4096)).toBeUndefined();
    expect(streamGemmShapeError(1, 5, 96)).toBeUndefined();
    expect(streamGemmShapeError(65, 4096, 4096)).toBe('stream_gemm: m = 65 rows, must be 1..64');
    expect(streamGemmShapeError(0, 4096, 4096)).toBe('stream_gemm: m = 0 rows, must be 1..64');
    expect(streamGemmShapeError(1, 0, 4096)).toBe('stream_gemm: n = 0 features, must be positive');
    expect(streamGemmShapeError(1, 4096, 4112)).toBe('stream_gemm: k = 4112, must be a positive multiple of 32 up to 16777216');
    expect(streamGemmShapeError(1, 4096, 2 ** 25)).toBe('stream_gemm: k = 33554432, must be a positive multiple of 32 up to 16777216');
  });
});
