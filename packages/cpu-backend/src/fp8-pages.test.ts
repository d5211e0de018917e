import { ReferenceBackend, RefFp8KvStorage, RefKvStorage, readKvRow, type KvGeometry, type PagedAttentionArgs } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu-backend.js';
import { expectClose } from './test-support/compare.js';
import { simdLevels, withSimd } from './test-support/native-levels.js';
import { randomArray, rng, shuffled } from './test-support/random.js';

const reference = new ReferenceBackend();
const cpu = new CpuBackend();
const portable = new CpuBackend({ useNative: false });

const geometry: KvGeometry = { numLayers: 1, numHeads: 8, numKvHeads: 2, headDim: 64, pageSize: 16, bytesPerElement: 4, kvDtype: 'fp8' };
const SLOTS = 12;

/** The same random tokens appended to an fp8 pool on each backend (appendKv is the reference's on the CPU too). */
function fill(b: ReferenceBackend, seed: number): RefFp8KvStorage {
  const next = rng(seed);
  const storage = b.createKvStorage('device', SLOTS, geometry) as RefFp8KvStorage;
  const n = SLOTS * geometry.pageSize - 5;
  const shape = [n, geometry.numKvHeads, geometry.headDim];
  const tokens = Array.from({ length: n }, (_, t) => t);
  b.appendKv(
    storage,
    b.fromArray(randomArray(next, n * geometry.numKvHeads * geometry.headDim, 6), shape),
    b.fromArray(randomArray(next, n * geometry.numKvHeads * geometry.headDim, 6), shape),
    b.fromArray(
      tokens.map((t) => Math.floor(t / geometry.pageSize)),
      [n],
      'i32',
    ),
    b.fromArray(
      tokens.map((t) => t % geometry.pageSize),
      [n],
      'i32',
    ),
  );
  return storage;
}

/** A float32 pool of the values the fp8 pool stands for, read row by row. */
function dequantized(s: RefFp8KvStorage): RefKvStorage {
  const { kvDtype: _, ...g } = s.geometry;
  const out = new RefKvStorage(s.location, s.slots, g);
  for (let slot = 0; slot < s.slots; slot++)
    for (const kv of [0, 1] as const)
      for (let h = 0; h < g.numKvHeads; h++) for (let t = 0; t < g.pageSize; t++) out.data.set(readKvRow(s, slot, kv, h, t), out.offset(slot, kv, h, t));
  return out;
}

function lists(storage: RefFp8KvStorage | RefKvStorage, groups: number, seed: number): PagedAttentionArgs {
  const next = rng(seed);
  const batch = 2;
  const maxPages = 7;
  const table = new Int32Array(batch * groups * maxPages).fill(-3);
  const counts = new Int32Array(batch * groups);
  const lasts = new Int32Array(batch * groups);
  for (let l = 0; l < batch * groups; l++) {
    counts[l] = 1 + Math.floor(next() * maxPages);
    lasts[l] = 1 + Math.floor(next() * geometry.pageSize);
    const order = shuffled(next, SLOTS);
    for (let p = 0; p < counts[l]; p++) table[l * maxPages + p] = order[p];
  }
  return {
    q: reference.fromArray(randomArray(next, batch * geometry.numHeads * geometry.headDim, 2), [batch, geometry.numHeads, geometry.headDim]),
    storage,
    pageTable: reference.fromArray(table, [batch, groups, maxPages], 'i32'),
    pageCounts: reference.fromArray(counts, [batch, groups], 'i32'),
    lastPageLens: reference.fromArray(lasts, [batch, groups], 'i32'),
    scale: 1 / Math.sqrt(geometry.headDim),
    returnTokenScores: true,
  };
}

const bits = (a: Float32Array | Int32Array) => new Uint32Array(Float32Array.from(a).buffer);

describe('fp8 pages on the CPU backend', () => {
  it('stores the same bytes as the reference', () => {
    expect(cpu.createKvStorage('device', 2, geometry)).toBeInstanceOf(RefFp8KvStorage);
    expect(fill(cpu, 3).bytes).toEqual(fill(reference, 3).bytes);
  });

  describe.each(simdLevels())('paged attention (%s kernels)', (level) => {
    it.each([1, geometry.numKvHeads, geometry.numHeads])(
      'G = %i: the native kernel over the dequantized pages, bit for bit; the reference within its tolerance',
      (groups) => {
        const pool = fill(cpu, 5);
        const plain = dequantized(pool);
        const got = withSimd(level, () => cpu.pagedAttention(lists(pool, groups, groups)));
        // The CPU's fp8 path is its float32 kernel on the dequantized values...
        const f32 = withSimd(level, () => cpu.pagedAttention(lists(plain, groups, groups)));
        expect(bits(cpu.readSync(got.out))).toEqual(bits(cpu.readSync(f32.out)));
        expect(bits(cpu.readSync(got.tokenScores!))).toEqual(bits(cpu.readSync(f32.tokenScores!)));
        // ...and the reference's fp8 path is its float32 code on the same values, so the two differ only as their float32 paths do.
        const want = reference.pagedAttention(lists(pool, groups, groups));
        expectClose(cpu.readSync(got.out), reference.readSync(want.out), 'out');
        expectClose(cpu.readSync(got.tokenScores!), reference.readSync(want.tokenScores!), 'tokenScores');
      },
    );
  });

  it('without the addon, paged attention is the reference, bit for bit', () => {
    const pool = fill(portable, 7);
    const got = portable.pagedAttention(lists(pool, 2, 9));
    const want = reference.pagedAttention(lists(pool, 2, 9));
    expect(bits(portable.readSync(got.out))).toEqual(bits(reference.readSync(want.out)));
  });

  it('refuses listed slots outside the pool before dequantizing', () => {
    const args = lists(fill(cpu, 5), 1, 1);
    (args.pageTable as unknown as { i32: Int32Array }).i32[0] = 999;
    expect(() => cpu.pagedAttention(args)).toThrow(`device slot 999 outside 0..${SLOTS - 1}`);
  });
});
