import { DIGEST_VARIANTS, ReferenceBackend, asRef, type KvGeometry, type RefDigestStorage, type RefKvStorage } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { estimateKernel } from './estimate.kernel.js';
import { kvAppendKernel } from './kv-append.kernel.js';
import { pageDigestKernel } from './page-digest.kernel.js';

const ref = new ReferenceBackend();
const geometry = (headDim: number, pageSize: number, numKvHeads = 2, numHeads = 4): KvGeometry => ({
  numLayers: 1, numHeads, numKvHeads, headDim, pageSize, bytesPerElement: 2,
});

/** A reference pool filled with dtype-representable random keys and values. */
function filledPool(g: KvGeometry, slots: number, dtype: 'f16' | 'bf16', seed: number): RefKvStorage {
  const s = ref.createKvStorage('device', slots, g) as RefKvStorage;
  s.data.set(quantize(new Rng(seed).array(s.data.length, -2, 2), dtype));
  return s;
}

describe.each([
  ['f16', 64, 16],
  ['bf16', 128, 32],
  ['f16', 128, 8],
] as const)('KV page kernels (%s, head dim %i, page %i)', (dtype, headDim, pageSize) => {
  const g = geometry(headDim, pageSize);
  const slots = 6;

  it('kv_append writes tokens where the reference does', () => {
    const pool = filledPool(g, slots, dtype, 1);
    const tokens = 5;
    const rng = new Rng(2);
    const k = quantize(rng.array(tokens * g.numKvHeads * headDim), dtype);
    const v = quantize(rng.array(tokens * g.numKvHeads * headDim), dtype);
    const slotIds = [3, 0, 5, 3, 1];
    const offsets = [0, pageSize - 1, 2, 1, pageSize >> 1];
    const emuPool = EmuBuffer.from(dtype, pool.data);
    emulateKernel(kvAppendKernel, { dtype, headDim, pageSize }).run({
      k: EmuBuffer.from(dtype, k), v: EmuBuffer.from(dtype, v), slots: EmuBuffer.from('i32', slotIds), offsets: EmuBuffer.from('i32', offsets),
      pool: emuPool, numTokens: tokens, numKvHeads: g.numKvHeads,
    });
    const shape = [tokens, g.numKvHeads, headDim];
    ref.appendKv(pool, ref.fromArray(k, shape), ref.fromArray(v, shape), ref.fromArray(slotIds, [tokens], 'i32'), ref.fromArray(offsets, [tokens], 'i32'));
    expect(Array.from(emuPool.toFloat32())).toEqual(Array.from(pool.data));
  });

  it.each(DIGEST_VARIANTS)('page_digest %s matches computeDigest', (variant) => {
    const pool = filledPool(g, slots, dtype, 3);
    const pages = [4, 1, 2];
    const rows = [0, 2, 1];
    const digests = ref.createDigestStorage(3, g) as RefDigestStorage;
    const emuDigests = new EmuBuffer('f32', digests.data.length).fill(-7);
    emulateKernel(pageDigestKernel, { dtype, headDim, pageSize, variant }).run({
      pool: EmuBuffer.from(dtype, pool.data), slots: EmuBuffer.from('i32', pages), rows: EmuBuffer.from('i32', rows), digests: emuDigests,
      numPages: pages.length, numKvHeads: g.numKvHeads,
    });
    ref.digestPages(pool, ref.fromArray(pages, [3], 'i32'), digests, ref.fromArray(rows, [3], 'i32'), variant);
    expectClose(emuDigests.toFloat32(), digests.data, 1e-5, 1e-6);
  });

  it.each(DIGEST_VARIANTS)('estimate %s matches the reference per head group', (variant) => {
    const rng = new Rng(4);
    const digests = ref.createDigestStorage(7, g) as RefDigestStorage;
    digests.data.set(rng.array(digests.data.length, -1, 1));
    if (variant === 'sphere') for (let r = 0; r < 7 * g.numKvHeads; r++) digests.data.fill(0, r * 2 * headDim + headDim + 1, (r + 1) * 2 * headDim);
    const q = quantize(rng.array(g.numHeads * headDim), dtype);
    const rows = [6, 0, 3, 2, 5];
    for (const groups of [1, 2, 4]) {
      const out = new EmuBuffer('f32', groups * rows.length);
      emulateKernel(estimateKernel, { dtype, headDim, variant }).run({
        q: EmuBuffer.from(dtype, q), digests: EmuBuffer.from('f32', digests.data), rows: EmuBuffer.from('i32', rows), out,
        numPages: rows.length, numHeads: g.numHeads, numKvHeads: g.numKvHeads, groups,
      });
      const want = asRef(ref.estimate(ref.fromArray(q, [g.numHeads, headDim]), digests, ref.fromArray(rows, [rows.length], 'i32'), groups, variant)).f32;
      expectClose(out.toFloat32(), want, 1e-5, 1e-5);
    }
  });
});
