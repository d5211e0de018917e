import { ReferenceBackend, asRef, type KvGeometry, type RefKvStorage } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { pagedDecodeMergeKernel } from './paged-decode.kernel.js';
import { pagedPrefillKernel, pagedPrefillSplits } from './paged-prefill.kernel.js';

const ref = new ReferenceBackend();

interface Case {
  dtype: 'f16' | 'bf16';
  headDim: number;
  pageSize: number;
  numHeads: number;
  numKvHeads: number;
  /** Position of the chunk's first row (tokens before it are in the pages already). */
  first: number;
  rows: number;
  splits: number;
}

/** The chunk through paged_prefill and paged_decode_merge, against the reference paged attention with each row's causal page list. */
function runCase(c: Case): void {
  const g: KvGeometry = { numLayers: 1, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, pageSize: c.pageSize, bytesPerElement: 2 };
  const rng = new Rng(5);
  const end = c.first + c.rows;
  const pages = Math.ceil(end / c.pageSize);
  const slotCount = pages + 3;
  const pool = ref.createKvStorage('device', slotCount, g) as RefKvStorage;
  pool.data.set(quantize(rng.array(pool.data.length, -1, 1), c.dtype));
  // The sequence's pages in a shuffled order of slots.
  const slots = rng.shuffle([...Array(slotCount).keys()]).slice(0, pages);
  const q = quantize(rng.array(c.rows * c.numHeads * c.headDim, -2, 2), c.dtype);
  const scale = 1 / Math.sqrt(c.headDim);
  const partialOut = new EmuBuffer('f32', c.rows * c.numHeads * c.splits * c.headDim).fill(Number.NaN);
  const partialLse = new EmuBuffer('f32', c.rows * c.numHeads * c.splits).fill(Number.NaN);
  emulateKernel(pagedPrefillKernel, { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize }).run({
    q: EmuBuffer.from(c.dtype, q),
    pool: EmuBuffer.from(c.dtype, pool.data),
    pageSlots: EmuBuffer.from('i32', slots),
    partialOut,
    partialLse,
    numRows: c.rows,
    start: c.first,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    numSplits: c.splits,
    scale,
  });
  // Every partial is written (no NaN): splits without a row's keys give lse -inf and zeros.
  expect(partialOut.toFloat32().some(Number.isNaN)).toBe(false);
  expect(partialLse.toFloat32().some(Number.isNaN)).toBe(false);
  const rows = c.rows * c.numHeads;
  const out = new EmuBuffer(c.dtype, rows * c.headDim);
  const lse = new EmuBuffer('f32', rows);
  emulateKernel(pagedDecodeMergeKernel, { dtype: c.dtype, headDim: c.headDim }).run({ partialOut, partialLse, out, lse, rows, numSplits: c.splits });
  const table = new Int32Array(c.rows * pages);
  const counts = new Int32Array(c.rows);
  const lasts = new Int32Array(c.rows);
  for (let r = 0; r < c.rows; r++) {
    const p = c.first + r;
    counts[r] = Math.floor(p / c.pageSize) + 1;
    lasts[r] = (p % c.pageSize) + 1;
    table.set(slots.slice(0, counts[r]), r * pages);
  }
  const want = ref.pagedAttention({
    q: ref.fromArray(q, [c.rows, c.numHeads, c.headDim]),
    storage: pool,
    pageTable: ref.fromArray(table, [c.rows, 1, pages], 'i32'),
    pageCounts: ref.fromArray(counts, [c.rows, 1], 'i32'),
    lastPageLens: ref.fromArray(lasts, [c.rows, 1], 'i32'),
    scale,
  });
  // P is rounded to the 16-bit type before P V (as in causal_prefill), and the output once.
  const eps = c.dtype === 'f16' ? 2 ** -9 : 2 ** -6;
  expectClose(out.toFloat32(), asRef(want.out).f32, eps, eps);
  expect(lse.toFloat32().every(Number.isFinite)).toBe(true);
}

describe('paged_prefill + paged_decode_merge match the reference paged attention of each row over its causal page list', () => {
  it.each([
    // A chunk after a cached prefix: few rows, several key tiles, split three ways.
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 4, numKvHeads: 2, first: 80, rows: 12, splits: 3 },
    // Two query tiles (the second partial), a start inside a page, pages larger than a tile.
    { dtype: 'bf16', headDim: 128, pageSize: 64, numHeads: 2, numKvHeads: 2, first: 37, rows: 70, splits: 2 },
    // No prefix (a whole prompt over its pages), head dim 256 (32-row blocks, 16-key tiles), GQA group 2.
    { dtype: 'f16', headDim: 256, pageSize: 8, numHeads: 2, numKvHeads: 1, first: 0, rows: 40, splits: 1 },
    // More splits than some rows have keys: splits past a row's diagonal write lse -inf.
    { dtype: 'f16', headDim: 64, pageSize: 32, numHeads: 1, numKvHeads: 1, first: 5, rows: 60, splits: 7 },
  ] satisfies Case[])('$dtype hd$headDim ps$pageSize heads $numHeads/$numKvHeads, $rows rows from position $first, $splits split(s)', (c) => runCase(c));
});

describe('pagedPrefillSplits', () => {
  it('fills about one wave of 2 blocks an SM, within the key tiles and 32', () => {
    // A 32-token question on a 30k document, 32 heads: 32 blocks, so 8 splits on 132 SMs.
    expect(pagedPrefillSplits({ rows: 32, numHeads: 32, headDim: 128, keys: 30_752 })).toBe(8);
    // A 512-token turn: 8 query tiles x 32 heads already fill the GPU.
    expect(pagedPrefillSplits({ rows: 512, numHeads: 32, headDim: 128, keys: 6000 })).toBe(1);
    // A few keys: at most one split a tile.
    expect(pagedPrefillSplits({ rows: 4, numHeads: 1, headDim: 128, keys: 70 })).toBe(3);
    expect(pagedPrefillSplits({ rows: 4, numHeads: 1, headDim: 128, keys: 1_000_000 })).toBe(32);
  });
});
