import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { quantize } from '../test-support/compare.js';
import { expectProduct, rows } from '../test-support/products.js';
import { Rng } from '../test-support/random.js';
import type { DType } from '../spec/matrix.js';
import { skinnyGemmKernel, skinnyGemmReduceKernel, skinnyGemmShapeError, skinnyGemmSplits } from './skinny-gemm.kernel.js';

type Out = DType | 'f32';

/** out [m, n] of x [m, k] @ w [n, k]^T through skinny_gemm (and skinny_gemm_reduce when split). */
function skinny(dtype: DType, out: Out, x: Float32Array, w: Float32Array, m: number, n: number, k: number, numSplits: number): Float32Array {
  const result = new EmuBuffer(out, m * n).fill(Number.NaN);
  const partial = new EmuBuffer('f32', numSplits > 1 ? numSplits * m * n : 4).fill(Number.NaN);
  emulateKernel(skinnyGemmKernel, { dtype, out }).run({
    x: EmuBuffer.from(dtype, x),
    w: EmuBuffer.from(dtype, w),
    out: result,
    partial,
    m,
    n,
    k,
    numSplits,
  });
  if (numSplits > 1) emulateKernel(skinnyGemmReduceKernel, { out }).run({ partial, out: result, count: m * n, numSplits });
  return result.toFloat32();
}

describe('skinny_gemm (tensor-core fragments emulated) matches a float64 product', () => {
  it.each([
    { dtype: 'f16', out: 'f16', m: 1, n: 128, k: 128 },
    { dtype: 'f16', out: 'f32', m: 3, n: 128, k: 64 },
    { dtype: 'bf16', out: 'bf16', m: 17, n: 128, k: 128 },
    { dtype: 'bf16', out: 'f32', m: 64, n: 64, k: 64 },
    // Two blocks, the second with 64 features: two of its warps only copy.
    { dtype: 'f16', out: 'f16', m: 64, n: 192, k: 128 },
  ] as const)('$dtype -> $out, m $m, n $n, k $k', ({ dtype, out, m, n, k }) => {
    const rng = new Rng(5 + m);
    const x = quantize(rng.array(m * k, -1, 1), dtype);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    expectProduct(skinny(dtype, out, x, w, m, n, k, 1), x, w, m, n, k, out);
  });

  it.each([
    // The split rule's own choice: 16 stages of k in 2 splits of 8.
    { dtype: 'f16', out: 'f16', m: 17, n: 64, k: 512, splits: skinnyGemmSplits({ n: 64, k: 512 }) },
    // 3 splits of 4 stages (4, 4, 2): a shorter last split.
    { dtype: 'bf16', out: 'f32', m: 3, n: 128, k: 320, splits: 3 },
    // More splits than stages: the last splits are empty and write zeros.
    { dtype: 'f16', out: 'f32', m: 1, n: 64, k: 64, splits: 3 },
  ] as const)('split k: $dtype -> $out, m $m, n $n, k $k in $splits splits, reduced in split order', ({ dtype, out, m, n, k, splits }) => {
    expect(splits).toBeGreaterThan(1);
    const rng = new Rng(11);
    const x = quantize(rng.array(m * k, -1, 1), dtype);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    expectProduct(skinny(dtype, out, x, w, m, n, k, splits), x, w, m, n, k, out);
  });
});

describe('skinny_gemm is row-invariant: a row gets the same bits whatever m is and whatever the other rows hold', () => {
  it.each([
    { dtype: 'f16', out: 'f16', n: 128, k: 128, splits: 1 },
    { dtype: 'bf16', out: 'f32', n: 64, k: 512, splits: 2 },
  ] as const)('$dtype -> $out, n $n, k $k, $splits split(s)', ({ dtype, out, n, k, splits }) => {
    const rng = new Rng(17);
    const w = quantize(rng.array(n * k, -0.5, 0.5), dtype);
    const x = quantize(rng.array(64 * k, -1, 1), dtype);
    const full = skinny(dtype, out, x, w, 64, n, k, splits);
    // m = 1: row 0 alone.
    expect(Array.from(skinny(dtype, out, x.subarray(0, k), w, 1, n, k, splits))).toEqual(rows(full, n, [0]));
    // m = 3: rows 0 and 2 of the 64, row 1 replaced by other values.
    const three = Float32Array.from([...rows(x, k, [0]), ...quantize(rng.array(k, -4, 4), dtype), ...rows(x, k, [2])]);
    const got = skinny(dtype, out, three, w, 3, n, k, splits);
    expect(rows(got, n, [0, 2])).toEqual(rows(full, n, [0, 2]));
    // m = 17: rows 0..16, rows 3..15 changed (row 16 sits alone in the second m-tile).
    const seventeen = Float32Array.from(x.subarray(0, 17 * k));
    seventeen.set(quantize(rng.array(13 * k, -2, 2), dtype), 3 * k);
    const got17 = skinny(dtype, out, seventeen, w, 17, n, k, splits);
    expect(rows(got17, n, [0, 1, 2, 16])).toEqual(rows(full, n, [0, 1, 2, 16]));
  });
});

describe('skinnyGemmSplits and the shapes skinny_gemm takes', () => {
  it('splits by (n, k) alone: about 240 blocks of 128 features, at least 8 stages a split, dividing k evenly', () => {
    const splits = (n: number, k: number) => skinnyGemmSplits({ n, k });
    // Llama-2-7B: qkv, o, gate + up, down, lm head.
    expect([splits(12288, 4096), splits(4096, 4096), splits(22016, 4096), splits(4096, 11008), splits(32000, 4096)]).toEqual([4, 8, 2, 8, 1]);
    // Llama-3-8B.
    expect([splits(6144, 4096), splits(4096, 4096), splits(28672, 4096), splits(4096, 14336), splits(128256, 4096)]).toEqual([8, 8, 2, 8, 1]);
    expect(splits(64, 64)).toBe(1);
    expect(skinnyGemmSplits({ n: 4096, k: 4096, targetBlocks: 132 })).toBe(8);
    expect(skinnyGemmSplits({ n: 4096, k: 4096, targetBlocks: 128 })).toBe(4);
  });

  it('refuses rows, features or k it does not take, saying why', () => {
    expect(skinnyGemmShapeError(64, 4096, 4096)).toBeUndefined();
    expect(skinnyGemmShapeError(65, 4096, 4096)).toBe('skinny_gemm: m = 65 rows, must be 1..64');
    expect(skinnyGemmShapeError(0, 4096, 4096)).toBe('skinny_gemm: m = 0 rows, must be 1..64');
    expect(skinnyGemmShapeError(1, 4000, 4096)).toBe('skinny_gemm: n = 4000 features, must be a positive multiple of 64');
    expect(skinnyGemmShapeError(1, 4096, 4100)).toBe('skinny_gemm: k = 4100, must be a positive multiple of 64');
    expect(() => skinnyGemmSplits({ n: 4096, k: 96 })).toThrow('skinny_gemm: k = 96, must be a positive multiple of 64');
  });
});
