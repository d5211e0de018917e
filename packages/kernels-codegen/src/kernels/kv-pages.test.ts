import { DIGEST_VARIANTS, ReferenceBackend, asRef, type KvGeometry, type RefDigestStorage, type RefKvStorage } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { EPS, expectClose, quantize } from '../test-support/compare.js';
import { bf16BitsToFloat, halfBitsToFloat } from '../ir/half.js';
import { Rng } from '../test-support/random.js';
import { estimateKernel, estimatePagesPerBlock } from './estimate.kernel.js';
import { kvAppendKernel } from './kv-append.kernel.js';
import { pageDigestKernel } from './page-digest.kernel.js';

const ref = new ReferenceBackend();
const geometry = (headDim: number, pageSize: number, numKvHeads = 2, numHeads = 4): KvGeometry => ({
  numLayers: 1,
  numHeads,
  numKvHeads,
  headDim,
  pageSize,
  bytesPerElement: 2,
});

/** A reference pool filled with dtype-representable random keys and values. */
function filledPool(g: KvGeometry, slots: number, dtype: 'f16' | 'bf16', seed: number): RefKvStorage {
  const s = ref.createKvStorage('device', slots, g) as RefKvStorage;
  s.data.set(quantize(new Rng(seed).array(s.data.length, -2, 2), dtype));
  return s;
}

/** The dtype's neighbour of the value with these bits, one step toward +inf (dir 1) or -inf (-1). */
function toward(dtype: 'f16' | 'bf16', bits: number, dir: 1 | -1): number {
  const sign = bits & 0x8000;
  const magnitude = bits & 0x7fff;
  // Away from zero on the side of `dir`, toward zero on the other; zero steps to the smallest value of `dir`'s sign.
  const next = magnitude === 0 ? (dir > 0 ? 1 : 0x8001) : (sign === 0) === dir > 0 ? bits + 1 : bits - 1;
  return dtype === 'f16' ? halfBitsToFloat(next) : bf16BitsToFloat(next);
}

// The box bounds' shuffle tree spans a head's D / 8 lanes: 4 at head dim 32 (two query
// heads a tree), 32 at 256 (four, then plain levels). 8 query heads per KV head take it
// four (two) at a time; 6 take it one at a time.
describe.each([32, 256])('estimate at head dim %i', (headDim) => {
  it.each(DIGEST_VARIANTS)('%s matches the reference with 8 and 6 query heads per KV head', (variant) => {
    for (const [numKvHeads, numHeads] of [
      [3, 24],
      [2, 12],
    ]) {
      const g = geometry(headDim, 16, numKvHeads, numHeads);
      const rng = new Rng(9);
      const digests = ref.createDigestStorage(5, g) as RefDigestStorage;
      digests.data.set(quantize(rng.array(digests.data.length, -1, 1), 'f16'));
      if (variant === 'sphere') for (let r = 0; r < 5 * numKvHeads; r++) digests.data.fill(0, r * 2 * headDim + headDim + 1, (r + 1) * 2 * headDim);
      const q = quantize(rng.array(numHeads * headDim), 'f16');
      const rows = [4, 0, 2];
      const out = new EmuBuffer('f32', numKvHeads * rows.length);
      emulateKernel(estimateKernel, { dtype: 'f16', headDim, variant }).run({
        q: EmuBuffer.from('f16', q),
        digests: EmuBuffer.from('f16', digests.data),
        rows: EmuBuffer.from('i32', rows),
        out,
        numPages: rows.length,
        numHeads,
        numKvHeads,
        groups: numKvHeads,
        pagesPerBlock: estimatePagesPerBlock(numHeads, numKvHeads, headDim),
      });
      const want = asRef(ref.estimate(ref.fromArray(q, [numHeads, headDim]), digests, ref.fromArray(rows, [rows.length], 'i32'), numKvHeads, variant)).f32;
      expectClose(out.toFloat32(), want, 1e-5, 1e-5);
    }
  });
});

describe.each([
  ['f16', 64, 16],
  ['bf16', 128, 32],
  ['f16', 128, 8],
] as const)('KV page kernels (%s, head dim %i, page %i)', (dtype, headDim, pageSize) => {
  const g = geometry(headDim, pageSize);
  const slots = 6;

  // 17 KV heads: more 16-byte chunks per token than one block of threads moves.
  it.each([2, 17])('kv_append writes tokens where the reference does (%i KV heads)', (kvHeads) => {
    const g = geometry(headDim, pageSize, kvHeads, kvHeads);
    const pool = filledPool(g, slots, dtype, 1);
    const tokens = 5;
    const rng = new Rng(2);
    const k = quantize(rng.array(tokens * g.numKvHeads * headDim), dtype);
    const v = quantize(rng.array(tokens * g.numKvHeads * headDim), dtype);
    const slotIds = [3, 0, 5, 3, 1];
    const offsets = [0, pageSize - 1, 2, 1, pageSize >> 1];
    const emuPool = EmuBuffer.from(dtype, pool.data);
    emulateKernel(kvAppendKernel, { dtype, headDim, pageSize }).run({
      k: EmuBuffer.from(dtype, k),
      v: EmuBuffer.from(dtype, v),
      slots: EmuBuffer.from('i32', slotIds),
      offsets: EmuBuffer.from('i32', offsets),
      pool: emuPool,
      numTokens: tokens,
      numKvHeads: g.numKvHeads,
    });
    const shape = [tokens, g.numKvHeads, headDim];
    ref.appendKv(pool, ref.fromArray(k, shape), ref.fromArray(v, shape), ref.fromArray(slotIds, [tokens], 'i32'), ref.fromArray(offsets, [tokens], 'i32'));
    expect(Array.from(emuPool.toFloat32())).toEqual(Array.from(pool.data));
  });

  it.each(DIGEST_VARIANTS)('page_digest %s stores computeDigest rounded outward', (variant) => {
    const pool = filledPool(g, slots, dtype, 3);
    const pages = [4, 1, 2];
    const rows = [0, 2, 1];
    const digests = ref.createDigestStorage(3, g) as RefDigestStorage;
    const emuDigests = new EmuBuffer(dtype, digests.data.length).fill(-7);
    emulateKernel(pageDigestKernel, { dtype, headDim, pageSize, variant }).run({
      pool: EmuBuffer.from(dtype, pool.data),
      slots: EmuBuffer.from('i32', pages),
      rows: EmuBuffer.from('i32', rows),
      digests: emuDigests,
      numPages: pages.length,
      numKvHeads: g.numKvHeads,
    });
    ref.digestPages(pool, ref.fromArray(pages, [3], 'i32'), digests, ref.fromArray(rows, [3], 'i32'), variant);
    const got = emuDigests.toFloat32();
    const bits = emuDigests.mem.a as Uint16Array;
    const want = digests.data;
    const D = headDim;
    for (let r = 0; r < 3 * g.numKvHeads; r++) {
      for (let d = 0; d < D; d++) {
        const up = r * 2 * D + d;
        const down = up + D;
        if (variant === 'sphere') {
          // The centre is the nearest value; the radius, measured from it, rounds up.
          expect(got[up]).toBe(quantize([want[up]], dtype)[0]);
          if (d > 0) expect(got[down]).toBe(0);
          continue;
        }
        // Upper corners: the least value at or above computeDigest's; lower: the greatest at or below.
        expect(got[up]).toBeGreaterThanOrEqual(want[up]);
        expect(toward(dtype, bits[up], -1)).toBeLessThan(want[up]);
        expect(got[down]).toBeLessThanOrEqual(want[down]);
        expect(toward(dtype, bits[down], 1)).toBeGreaterThan(want[down]);
      }
    }
    if (variant !== 'sphere') return;
    // The radius: at least the farthest key's distance from the stored centre, and within rounding of it.
    pages.forEach((page, i) => {
      for (let h = 0; h < g.numKvHeads; h++) {
        const at = (rows[i] * g.numKvHeads + h) * 2 * D;
        const keys = (page * 2 * g.numKvHeads + h) * pageSize * D;
        let farthest = 0;
        for (let t = 0; t < pageSize; t++) {
          let dist = 0;
          for (let d = 0; d < D; d++) dist += (pool.data[keys + t * D + d] - got[at + d]) ** 2;
          farthest = Math.max(farthest, Math.sqrt(dist));
        }
        expect(got[at + D]).toBeGreaterThanOrEqual(farthest * (1 - 1e-6));
        expectClose([got[at + D]], [farthest], EPS[dtype] * 4, 0);
      }
    });
  });

  it('page_digest boxes contain every key of the page (cuboid-max)', () => {
    const pool = filledPool(g, slots, dtype, 5);
    const emuDigests = new EmuBuffer(dtype, slots * g.numKvHeads * 2 * headDim);
    const pages = Array.from({ length: slots }, (_, i) => i);
    emulateKernel(pageDigestKernel, { dtype, headDim, pageSize, variant: 'cuboid-max' }).run({
      pool: EmuBuffer.from(dtype, pool.data),
      slots: EmuBuffer.from('i32', pages),
      rows: EmuBuffer.from('i32', pages),
      digests: emuDigests,
      numPages: slots,
      numKvHeads: g.numKvHeads,
    });
    const got = emuDigests.toFloat32();
    for (let p = 0; p < slots; p++) {
      for (let h = 0; h < g.numKvHeads; h++) {
        const box = (p * g.numKvHeads + h) * 2 * headDim;
        const keys = (p * 2 * g.numKvHeads + h) * pageSize * headDim;
        for (let t = 0; t < pageSize; t++) {
          for (let d = 0; d < headDim; d++) {
            const k = pool.data[keys + t * headDim + d];
            expect(k).toBeLessThanOrEqual(got[box + d]);
            expect(k).toBeGreaterThanOrEqual(got[box + headDim + d]);
          }
        }
      }
    }
  });

  it.each(DIGEST_VARIANTS)('estimate %s matches the reference per head group', (variant) => {
    // A block's four warps take ceil(KV heads / 4), at most 8, per pass: 5 KV heads of 2
    // query heads leave the last warp idle; 40 of 1 give the first warp a second pass.
    // 3 KV heads of 8 query heads take the boxes' shuffle tree four query heads at a time,
    // twice, with the fourth KV head of a load clamped to the third.
    const geometries = [
      [g, [1, 2, 4]],
      [geometry(headDim, pageSize, 5, 10), [1, 5, 10]],
      [geometry(headDim, pageSize, 40, 40), [1, 8, 40]],
      [geometry(headDim, pageSize, 3, 24), [1, 3, 12]],
    ] as const;
    for (const [gg, groupsList] of geometries) {
      const rng = new Rng(4);
      const digests = ref.createDigestStorage(7, gg) as RefDigestStorage;
      // Digests as stored: values of the dtype.
      digests.data.set(quantize(rng.array(digests.data.length, -1, 1), dtype));
      if (variant === 'sphere') for (let r = 0; r < 7 * gg.numKvHeads; r++) digests.data.fill(0, r * 2 * headDim + headDim + 1, (r + 1) * 2 * headDim);
      const q = quantize(rng.array(gg.numHeads * headDim), dtype);
      const rows = [6, 0, 3, 2, 5];
      for (const groups of groupsList) {
        const out = new EmuBuffer('f32', groups * rows.length);
        emulateKernel(estimateKernel, { dtype, headDim, variant }).run({
          q: EmuBuffer.from(dtype, q),
          digests: EmuBuffer.from(dtype, digests.data),
          rows: EmuBuffer.from('i32', rows),
          out,
          numPages: rows.length,
          numHeads: gg.numHeads,
          numKvHeads: gg.numKvHeads,
          groups,
          pagesPerBlock: estimatePagesPerBlock(gg.numHeads, gg.numKvHeads, headDim),
        });
        const want = asRef(ref.estimate(ref.fromArray(q, [gg.numHeads, headDim]), digests, ref.fromArray(rows, [rows.length], 'i32'), groups, variant)).f32;
        expectClose(out.toFloat32(), want, 1e-5, 1e-5);
      }
    }
  });
});
