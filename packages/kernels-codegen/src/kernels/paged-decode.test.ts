import { ReferenceBackend, asRef, type KvGeometry, type RefKvStorage } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { pagedDecodeKernel, pagedDecodeMergeKernel, pagedDecodeSplits, pagedDecodeStep } from './paged-decode.kernel.js';
import { pagedTokenScoresKernel } from './token-scores.kernel.js';

const ref = new ReferenceBackend();
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

interface Case {
  dtype: 'f16' | 'bf16';
  headDim: number;
  pageSize: number;
  numHeads: number;
  numKvHeads: number;
  /** Page lists per batch row: 1, numKvHeads or numHeads. */
  lists: number;
  splits: number;
}

function runCase(c: Case): void {
  const g: KvGeometry = { numLayers: 1, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, pageSize: c.pageSize, bytesPerElement: 2 };
  const rng = new Rng(11);
  const slots = 12;
  const pool = ref.createKvStorage('device', slots, g) as RefKvStorage;
  pool.data.set(quantize(rng.array(pool.data.length, -1, 1), c.dtype));
  const batch = 2;
  const maxPages = 5;
  const table: number[] = [];
  const counts: number[] = [];
  const lasts: number[] = [];
  for (let r = 0; r < batch; r++) {
    for (let l = 0; l < c.lists; l++) {
      const n = 1 + rng.int(maxPages);
      const pages = rng.shuffle([...Array(slots).keys()]).slice(0, maxPages);
      table.push(...pages);
      counts.push(n);
      lasts.push(1 + rng.int(c.pageSize));
    }
  }
  const q = quantize(rng.array(batch * c.numHeads * c.headDim, -2, 2), c.dtype);
  const scale = 1 / Math.sqrt(c.headDim);
  const group = gcd(c.numHeads / c.numKvHeads, c.numHeads / c.lists);
  const partialOut = new EmuBuffer('f32', batch * c.numHeads * c.splits * c.headDim);
  const partialLse = new EmuBuffer('f32', batch * c.numHeads * c.splits);
  emulateKernel(pagedDecodeKernel, { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize, group }).run({
    q: EmuBuffer.from(c.dtype, q),
    pool: EmuBuffer.from(c.dtype, pool.data),
    pageTable: EmuBuffer.from('i32', table),
    pageCounts: EmuBuffer.from('i32', counts),
    lastPageLens: EmuBuffer.from('i32', lasts),
    partialOut,
    partialLse,
    batch,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    numLists: c.lists,
    maxPages,
    numSplits: c.splits,
    scale,
  });
  const rows = batch * c.numHeads;
  const out = new EmuBuffer(c.dtype, rows * c.headDim);
  const lse = new EmuBuffer('f32', rows);
  emulateKernel(pagedDecodeMergeKernel, { dtype: c.dtype, headDim: c.headDim }).run({ partialOut, partialLse, out, lse, rows, numSplits: c.splits });
  const want = ref.pagedAttention({
    q: ref.fromArray(q, [batch, c.numHeads, c.headDim]),
    storage: pool,
    pageTable: ref.fromArray(table, [batch, c.lists, maxPages], 'i32'),
    pageCounts: ref.fromArray(counts, [batch, c.lists], 'i32'),
    lastPageLens: ref.fromArray(lasts, [batch, c.lists], 'i32'),
    scale,
    returnTokenScores: true,
  });
  const scores = new EmuBuffer('f32', batch * c.lists * maxPages * c.pageSize).fill(-1);
  emulateKernel(pagedTokenScoresKernel, { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize }).run({
    q: EmuBuffer.from(c.dtype, q),
    pool: EmuBuffer.from(c.dtype, pool.data),
    pageTable: EmuBuffer.from('i32', table),
    pageCounts: EmuBuffer.from('i32', counts),
    lastPageLens: EmuBuffer.from('i32', lasts),
    lse,
    scores,
    batch,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    numLists: c.lists,
    maxPages,
    scale,
  });
  expectClose(scores.toFloat32(), asRef(want.tokenScores!).f32, 2e-3, 1e-5);
  // Outputs are rounded to the 16-bit type once; the f32 math differs from the
  // reference's f64 softmax by far less than that.
  const eps = c.dtype === 'f16' ? 2 ** -10 : 2 ** -7;
  expectClose(out.toFloat32(), asRef(want.out).f32, eps, eps);
  expect(lse.toFloat32().every(Number.isFinite)).toBe(true);
}

describe('paged_decode + paged_decode_merge match the reference paged attention', () => {
  it.each([
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 8, numKvHeads: 2, lists: 1, splits: 1 },
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 8, numKvHeads: 2, lists: 1, splits: 3 },
    { dtype: 'bf16', headDim: 128, pageSize: 32, numHeads: 4, numKvHeads: 2, lists: 2, splits: 2 },
    { dtype: 'f16', headDim: 128, pageSize: 8, numHeads: 4, numKvHeads: 4, lists: 4, splits: 4 },
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 8, numKvHeads: 2, lists: 8, splits: 2 },
    { dtype: 'bf16', headDim: 256, pageSize: 16, numHeads: 2, numKvHeads: 1, lists: 1, splits: 5 },
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 16, numKvHeads: 2, lists: 1, splits: 2 },
    { dtype: 'bf16', headDim: 128, pageSize: 32, numHeads: 8, numKvHeads: 1, lists: 1, splits: 1 },
    { dtype: 'f16', headDim: 32, pageSize: 8, numHeads: 8, numKvHeads: 1, lists: 1, splits: 3 },
  ] satisfies Case[])('$dtype hd$headDim ps$pageSize heads $numHeads/$numKvHeads, $lists list(s), $splits split(s)', (c) => runCase(c));
});

describe('pagedDecodeSplits', () => {
  const shape = { batch: 8, numHeads: 32, group: 4, headDim: 128, tokens: 4096 };
  it('fills one wave of 132 SMs x 4 blocks', () => {
    expect(pagedDecodeStep(shape)).toBe(16);
    expect(pagedDecodeSplits(shape)).toBe(8);
    expect(pagedDecodeSplits({ ...shape, batch: 1 })).toBe(66);
    expect(pagedDecodeSplits({ ...shape, sms: 78 })).toBe(4);
  });
  it('gives each split at least one step and never fewer than one split', () => {
    expect(pagedDecodeSplits({ ...shape, batch: 1, tokens: 100 })).toBe(7);
    expect(pagedDecodeSplits({ ...shape, batch: 64 })).toBe(1);
    expect(pagedDecodeSplits({ ...shape, tokens: 1 })).toBe(1);
    expect(pagedDecodeStep({ headDim: 64, group: 8 })).toBe(16);
  });
});
