import { type RefKvStorage, ReferenceBackend, asRef, type KvGeometry, type PagedAttentionArgs } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu-backend.js';
import { expectClose } from './test-support/compare.js';
import { simdLevels, withSimd } from './test-support/native-levels.js';
import { randomArray, rng, shuffled } from './test-support/random.js';

const reference = new ReferenceBackend();
const cpu = new CpuBackend();

interface Case {
  batch: number;
  heads: number;
  kvHeads: number;
  /** Page lists per batch row: 1, kvHeads or heads. */
  groups: number;
  headDim: number;
  pageSize: number;
  maxPages: number;
  tokenScores: boolean;
}

const CASES: Case[] = [
  { batch: 1, heads: 1, kvHeads: 1, groups: 1, headDim: 4, pageSize: 4, maxPages: 1, tokenScores: true },
  { batch: 1, heads: 4, kvHeads: 2, groups: 1, headDim: 16, pageSize: 16, maxPages: 5, tokenScores: true },
  { batch: 2, heads: 4, kvHeads: 2, groups: 2, headDim: 13, pageSize: 4, maxPages: 9, tokenScores: true },
  { batch: 3, heads: 4, kvHeads: 1, groups: 4, headDim: 32, pageSize: 16, maxPages: 6, tokenScores: true },
  { batch: 2, heads: 8, kvHeads: 2, groups: 2, headDim: 8, pageSize: 4, maxPages: 7, tokenScores: false },
  { batch: 1, heads: 6, kvHeads: 3, groups: 3, headDim: 24, pageSize: 16, maxPages: 3, tokenScores: false },
  { batch: 1, heads: 4, kvHeads: 2, groups: 4, headDim: 128, pageSize: 16, maxPages: 40, tokenScores: true },
];

/** A pool of random keys/values and random page lists over scattered slots, some ending in a partial page. */
function scenario(c: Case, seed: number): Omit<PagedAttentionArgs, 'returnTokenScores'> {
  const next = rng(seed);
  const geometry: KvGeometry = { numLayers: 1, numHeads: c.heads, numKvHeads: c.kvHeads, headDim: c.headDim, pageSize: c.pageSize, bytesPerElement: 4 };
  const slots = c.maxPages * 2 + 3;
  const storage = reference.createKvStorage('device', slots, geometry) as RefKvStorage;
  storage.data.set(randomArray(next, storage.data.length, 2));
  const lists = c.batch * c.groups;
  // Entries past a list's count are never read; fill them with an invalid slot to prove it.
  const table = new Int32Array(lists * c.maxPages).fill(-7);
  const counts = new Int32Array(lists);
  const lasts = new Int32Array(lists);
  for (let l = 0; l < lists; l++) {
    counts[l] = l === 0 ? c.maxPages : 1 + Math.floor(next() * c.maxPages);
    lasts[l] = l === 0 ? c.pageSize : 1 + Math.floor(next() * c.pageSize);
    const order = shuffled(next, slots);
    for (let p = 0; p < counts[l]; p++) table[l * c.maxPages + p] = order[p];
  }
  return {
    q: reference.fromArray(randomArray(next, c.batch * c.heads * c.headDim, 2), [c.batch, c.heads, c.headDim]),
    storage,
    pageTable: reference.fromArray(table, [c.batch, c.groups, c.maxPages], 'i32'),
    pageCounts: reference.fromArray(counts, [c.batch, c.groups], 'i32'),
    lastPageLens: reference.fromArray(lasts, [c.batch, c.groups], 'i32'),
    scale: 1 / Math.sqrt(c.headDim),
  };
}

const label = (c: Case) =>
  `B ${c.batch}, heads ${c.heads} / ${c.kvHeads} KV, G ${c.groups}, dim ${c.headDim}, page ${c.pageSize} x ${c.maxPages}, scores ${c.tokenScores}`;

describe.each(simdLevels())('CpuBackend.pagedAttention (%s kernels)', (level) => {
  it.each(CASES.map((c) => [label(c), c] as const))('matches the reference: %s', (_, c) => {
    const args = { ...scenario(c, c.heads * 1000 + c.headDim * 10 + c.maxPages), returnTokenScores: c.tokenScores };
    const got = withSimd(level, () => cpu.pagedAttention(args));
    const want = reference.pagedAttention(args);
    expect(got.out.shape).toEqual([c.batch, c.heads, c.headDim]);
    expectClose(cpu.readSync(got.out), reference.readSync(want.out), 'out');
    if (c.tokenScores) {
      expect(got.tokenScores?.shape).toEqual([c.batch, c.groups, c.maxPages * c.pageSize]);
      expectClose(cpu.readSync(got.tokenScores!), reference.readSync(want.tokenScores!), 'tokenScores');
    } else {
      expect(got.tokenScores).toBeUndefined();
    }
  });
});

describe('CpuBackend.pagedAttention errors', () => {
  const c = CASES[2];
  const lists = () => scenario(c, 99);

  it('rejects a list with too many pages or an empty last page, like the reference', () => {
    const args = lists();
    const counts = asRef(args.pageCounts).i32;
    counts[1] = c.maxPages + 1;
    expect(() => cpu.pagedAttention(args)).toThrow(`pagedAttention: row 0 group 1 lists ${c.maxPages + 1} page(s)`);
    expect(() => reference.pagedAttention(args)).toThrow(`pagedAttention: row 0 group 1 lists ${c.maxPages + 1} page(s)`);
    counts[1] = 1;
    asRef(args.lastPageLens).i32[1] = 0;
    expect(() => cpu.pagedAttention(args)).toThrow('with 0 token(s) in the last');
  });

  it('rejects slots outside the pool instead of reading past it', () => {
    const args = lists();
    asRef(args.pageTable).i32[0] = 10_000;
    expect(() => cpu.pagedAttention(args)).toThrow(/device slot 10000 outside 0\.\.\d+/);
    expect(() => reference.pagedAttention(args)).toThrow(/device slot 10000 outside/);
  });

  it('rejects a q of the wrong size and groups that do not divide the heads', () => {
    const args = lists();
    expect(() => cpu.pagedAttention({ ...args, q: cpu.fromArray(new Float32Array(3), [1, 3]) })).toThrow(
      `pagedAttention: q must be [${c.batch}, ${c.heads}, ${c.headDim}]`,
    );
    const threeLists = {
      ...args,
      pageTable: cpu.fromArray(new Int32Array(3), [1, 3, 1], 'i32'),
      pageCounts: cpu.fromArray([1, 1, 1], [1, 3], 'i32'),
      lastPageLens: cpu.fromArray([1, 1, 1], [1, 3], 'i32'),
      q: cpu.fromArray(new Float32Array(c.heads * c.headDim), [1, c.heads, c.headDim]),
    };
    expect(() => cpu.pagedAttention(threeLists)).toThrow(`pagedAttention: 3 page lists do not divide ${c.heads} heads`);
  });
});
