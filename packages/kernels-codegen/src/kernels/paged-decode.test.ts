import { ReferenceBackend, asRef, type KvGeometry, type RefKvStorage } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { pagedDecodeKernel, pagedDecodeMergeKernel, pagedDecodeSplits, pagedDecodeStep, splitTokensFor } from './paged-decode.kernel.js';
import { pagedTokenScoresKernel } from './token-scores.kernel.js';
import { runPagedDecode } from '../test-support/paged-decode-run.js';

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
  const { out, lse } = runPagedDecode(
    pagedDecodeKernel,
    { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize, group },
    {
      q: EmuBuffer.from(c.dtype, q),
      pool: EmuBuffer.from(c.dtype, pool.data),
      pageTable: EmuBuffer.from('i32', table),
      pageCounts: EmuBuffer.from('i32', counts),
      lastPageLens: EmuBuffer.from('i32', lasts),
      batch,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      numLists: c.lists,
      maxPages,
      numSplits: c.splits,
      splitTokens: splitTokensFor(maxPages * c.pageSize, c.splits),
      scale,
    },
  );
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

describe('paged_decode (its last splits merging) matches the reference paged attention', () => {
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
  it('takes another split size that is a multiple of 32 tokens, and refuses one that is not', () => {
    expect(pagedDecodeSplits({ tokens: 4096, splitTokens: 256 })).toEqual({ splits: 16, splitTokens: 256 });
    for (const bad of [0, 48, 100.5, Number.NaN]) expect(() => pagedDecodeSplits({ tokens: 4096, splitTokens: bad })).toThrow(/multiple of 32 tokens/);
  });
  it('splits every list into pieces of a fixed number of tokens, whatever the batch', () => {
    expect(pagedDecodeSplits({ tokens: 4096 })).toEqual({ splits: 8, splitTokens: 512 });
    expect(pagedDecodeSplits({ tokens: 30_720 })).toEqual({ splits: 60, splitTokens: 512 });
    expect(pagedDecodeSplits({ tokens: 513 })).toEqual({ splits: 2, splitTokens: 512 });
    expect(pagedDecodeSplits({ tokens: 1 })).toEqual({ splits: 1, splitTokens: 512 });
    // A whole number of every kernel's steps.
    for (const [headDim, group] of [
      [32, 1],
      [64, 4],
      [128, 1],
      [128, 8],
      [256, 2],
    ])
      expect(512 % pagedDecodeStep({ headDim, group })).toBe(0);
    expect(splitTokensFor(160, 2)).toBe(96);
    expect(splitTokensFor(40, 3)).toBe(32);
  });
});

describe('paged_decode is batch-invariant', () => {
  it("gives a row the same bits alone and beside a longer row (the longer list adds splits, not a different cut of this row's)", () => {
    const c = { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 4, numKvHeads: 2 } as const;
    const g: KvGeometry = { numLayers: 1, ...c, bytesPerElement: 2 };
    const rng = new Rng(3);
    const slots = 80;
    const pool = ref.createKvStorage('device', slots, g) as RefKvStorage;
    pool.data.set(quantize(rng.array(pool.data.length, -1, 1), c.dtype));
    const q = quantize(rng.array(2 * c.numHeads * c.headDim, -2, 2), c.dtype);
    // Row 0: 40 pages (640 tokens: 2 splits); row 1: 75 pages (1200 tokens: 3 splits).
    const lists = [
      { pages: rng.shuffle([...Array(slots).keys()]).slice(0, 40), last: 7 },
      { pages: rng.shuffle([...Array(slots).keys()]).slice(0, 75), last: 16 },
    ];
    const run = (rows: number[]) => {
      const maxPages = Math.max(...rows.map((r) => lists[r].pages.length));
      const { splits, splitTokens } = pagedDecodeSplits({ tokens: maxPages * c.pageSize });
      const n = rows.length;
      const table = rows.flatMap((r) => [...lists[r].pages, ...Array(maxPages - lists[r].pages.length).fill(0)]);
      const { out, lse } = runPagedDecode(
        pagedDecodeKernel,
        { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize, group: 2 },
        {
          q: EmuBuffer.from(
            c.dtype,
            rows.flatMap((r) => Array.from(q.subarray(r * c.numHeads * c.headDim, (r + 1) * c.numHeads * c.headDim))),
          ),
          pool: EmuBuffer.from(c.dtype, pool.data),
          pageTable: EmuBuffer.from('i32', table),
          pageCounts: EmuBuffer.from(
            'i32',
            rows.map((r) => lists[r].pages.length),
          ),
          lastPageLens: EmuBuffer.from(
            'i32',
            rows.map((r) => lists[r].last),
          ),
          batch: n,
          numHeads: c.numHeads,
          numKvHeads: c.numKvHeads,
          numLists: 1,
          maxPages,
          numSplits: splits,
          splitTokens,
          scale: 0.125,
        },
      );
      return { out: out.toFloat32(), lse: lse.toFloat32() };
    };
    const alone = run([0]);
    const beside = run([0, 1]);
    const width = c.numHeads * c.headDim;
    expect(Array.from(beside.out.subarray(0, width))).toEqual(Array.from(alone.out));
    expect(Array.from(beside.lse.subarray(0, c.numHeads))).toEqual(Array.from(alone.lse));
  });
});

describe('paged_decode_merge', () => {
  it('merges more splits than a warp has lanes (two rounds of 32), empty splits weighing nothing, as log-sum-exp in f64 does', () => {
    const rng = new Rng(5);
    const rows = 3;
    const numSplits = 45;
    const D = 128;
    const partial = rng.array(rows * numSplits * D, -2, 2);
    const lses = rng.array(rows * numSplits, -6, 3);
    // Splits past a row's tokens hold lse -inf (paged_decode writes them so).
    for (const s of [0, 31, 32, 44]) lses[numSplits + s] = -Infinity;
    const out = new EmuBuffer('f16', rows * D);
    const lse = new EmuBuffer('f32', rows);
    emulateKernel(pagedDecodeMergeKernel, { dtype: 'f16', headDim: D }).run({
      partialOut: EmuBuffer.from('f32', partial),
      partialLse: EmuBuffer.from('f32', lses),
      out,
      lse,
      rows,
      numSplits,
    });
    const wantOut: number[] = [];
    const wantLse: number[] = [];
    for (let r = 0; r < rows; r++) {
      const l = Array.from(lses.subarray(r * numSplits, (r + 1) * numSplits));
      const m = Math.max(...l);
      const w = l.map((x) => Math.exp(x - m));
      const sum = w.reduce((a, b) => a + b, 0);
      wantLse.push(m + Math.log(sum));
      for (let d = 0; d < D; d++) wantOut.push(w.reduce((a, ws, s) => a + ws * partial[(r * numSplits + s) * D + d], 0) / sum);
    }
    expectClose(lse.toFloat32(), wantLse, 1e-6);
    // The output is rounded to f16.
    expectClose(out.toFloat32(), wantOut, 2e-3, 1e-3);
  });
});
