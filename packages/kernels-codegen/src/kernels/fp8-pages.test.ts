/**
 * The fp8 KV kernels (kvDtype 'fp8': e4m3 codes with a scale byte per token, KV head
 * and K|V in each page slot) against core's reference backend on fp8 storage: appends
 * byte for byte, digests rounded outward from the reference's, attention within the
 * 16-bit kernels' tolerances.
 */
import {
  DIGEST_VARIANTS,
  ReferenceBackend,
  asRef,
  pageBytes,
  readKvRow,
  type KvGeometry,
  type RefDigestStorage,
  type RefFp8KvStorage,
  type Tensor,
} from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { bf16BitsToFloat, halfBitsToFloat } from '../ir/half.js';
import { EPS, expectClose, quantize } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { kvAppendFp8Kernel } from './kv-append.kernel.js';
import { pageDigestFp8Kernel } from './page-digest.kernel.js';
import { PAGED_DECODE_SPLIT_TOKENS, pagedDecodeFp8Kernel, pagedDecodeMergeKernel, pagedDecodeSplits, splitTokensFor } from './paged-decode.kernel.js';
import { pagedPrefillFp8Kernel } from './paged-prefill.kernel.js';
import { pagedTokenScoresFp8Kernel } from './token-scores.kernel.js';
import { runPagedDecode } from '../test-support/paged-decode-run.js';

const ref = new ReferenceBackend();
type Dtype = 'f16' | 'bf16';

const geometry = (headDim: number, pageSize: number, numKvHeads = 2, numHeads = 4): KvGeometry => ({
  numLayers: 1,
  numHeads,
  numKvHeads,
  headDim,
  pageSize,
  bytesPerElement: 2,
  kvDtype: 'fp8',
});

const fp8Storage = (g: KvGeometry, slots: number): RefFp8KvStorage => ref.createKvStorage('device', slots, g) as RefFp8KvStorage;

/** A device buffer holding these bytes. */
function byteBuffer(bytes: Uint8Array): EmuBuffer {
  const b = new EmuBuffer('u8', bytes.length);
  (b.mem.a as Uint8Array).set(bytes);
  return b;
}

/** The first index where two byte arrays differ (-1 if none; the shorter's length if only the lengths differ). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}
const i32s = (values: readonly number[]): Tensor => ref.fromArray(values, [values.length], 'i32');

/**
 * K or V rows of `headDim` values in the dtype: random rows at magnitudes from 2^-20
 * to 2^12, and crafted ones (ties to even after scaling, in the normal and subnormal
 * e4m3 ranges, signed zeros, an all-zero row, rows of subnormal f16 values, and rows
 * with a NaN or an infinity).
 */
function rows(rng: Rng, count: number, headDim: number, dtype: Dtype): Float32Array {
  const out = new Float32Array(count * headDim);
  for (let r = 0; r < count; r++) {
    const row = out.subarray(r * headDim, (r + 1) * headDim);
    const magnitude = 2 ** (rng.int(33) - 20);
    for (let d = 0; d < headDim; d++) row[d] = rng.uniform(-1, 1) * magnitude;
    switch (r % 8) {
      case 1:
        // amax 448 (scale factor 1): 1.0625 and 1.1875 are ties between e4m3 neighbours, 3 * 2^-10 a subnormal tie, 2^-10 rounds to 0, 232 ties to 224.
        row.set([448, 1.0625, 1.1875, -1.0625, 3 * 2 ** -10, 2 ** -10, -0, 0, 232, -240, 2 ** -9, 5 * 2 ** -10]);
        break;
      case 3:
        row.fill(0);
        row[headDim - 1] = -0;
        break;
      case 5:
        // A row whose largest magnitude is above 1.75 in its binade (scaled by 2^7), with ties at that scale.
        row.set([-1.9, 0.0087890625, 0.0302734375]);
        break;
      case 7:
        if (dtype === 'f16') for (let d = 0; d < headDim; d++) row[d] = (rng.int(2048) - 1024) * 2 ** -24;
        else row[r % headDim] = (r >> 3) % 2 === 0 ? Number.NaN : Number.NEGATIVE_INFINITY;
        break;
    }
  }
  return quantize(out, dtype);
}

describe.each([
  ['f16', 64, 16],
  ['bf16', 128, 32],
  ['f16', 32, 8],
] as const)('fp8 KV page kernels (%s, head dim %i, page %i)', (dtype, headDim, pageSize) => {
  const slots = 6;

  // 17 KV heads: more 16-byte chunks of a token than one block of threads moves, and a last warp partly idle.
  it.each([2, 17])('kv_append_fp8 writes the bytes the reference does (%i KV heads)', (kvHeads) => {
    const g = geometry(headDim, pageSize, kvHeads, kvHeads);
    const pool = fp8Storage(g, slots);
    const rng = new Rng(1);
    // Bytes outside the appended rows must stay as they were.
    for (let i = 0; i < pool.bytes.length; i++) pool.bytes[i] = rng.int(256);
    const tokens = 6;
    const k = rows(rng, tokens * kvHeads, headDim, dtype);
    const v = rows(rng, tokens * kvHeads, headDim, dtype);
    const slotIds = [3, 0, 5, 3, 1, 2];
    const offsets = [0, pageSize - 1, 2, 1, pageSize >> 1, 0];
    const emuPool = byteBuffer(pool.bytes);
    emulateKernel(kvAppendFp8Kernel, { dtype, headDim, pageSize }).run({
      k: EmuBuffer.from(dtype, k),
      v: EmuBuffer.from(dtype, v),
      slots: EmuBuffer.from('i32', slotIds),
      offsets: EmuBuffer.from('i32', offsets),
      pool: emuPool,
      numTokens: tokens,
      numKvHeads: kvHeads,
    });
    const shape = [tokens, kvHeads, headDim];
    ref.appendKv(pool, ref.fromArray(k, shape), ref.fromArray(v, shape), i32s(slotIds), i32s(offsets));
    expect(emuPool.length).toBe(slots * pageBytes(g));
    expect(firstDifference(emuPool.mem.a as Uint8Array, pool.bytes)).toBe(-1);
  });

  it('kv_append_fp8 skips tokens with a slot or offset outside the pool', () => {
    const g = geometry(headDim, pageSize);
    const pool = fp8Storage(g, slots);
    const k = rows(new Rng(2), 3 * 2, headDim, dtype);
    const emuPool = byteBuffer(pool.bytes);
    emulateKernel(kvAppendFp8Kernel, { dtype, headDim, pageSize }).run({
      k: EmuBuffer.from(dtype, k),
      v: EmuBuffer.from(dtype, k),
      slots: EmuBuffer.from('i32', [-1, 0, 1]),
      offsets: EmuBuffer.from('i32', [0, pageSize, -1]),
      pool: emuPool,
      numTokens: 3,
      numKvHeads: 2,
    });
    expect((emuPool.mem.a as Uint8Array).every((b) => b === 0)).toBe(true);
  });

  /** A pool with every slot's tokens appended (valid codes and scale bytes throughout). */
  function filledPool(g: KvGeometry, seed: number): RefFp8KvStorage {
    const pool = fp8Storage(g, slots);
    const rng = new Rng(seed);
    const tokens = slots * g.pageSize;
    const shape = [tokens, g.numKvHeads, g.headDim];
    const k = rows(rng, tokens * g.numKvHeads, g.headDim, dtype).map((x) => (Number.isFinite(x) ? x : 1));
    const v = quantize(rng.array(tokens * g.numKvHeads * g.headDim, -2, 2), dtype);
    const at = [...Array(tokens).keys()];
    ref.appendKv(pool, ref.fromArray(k, shape), ref.fromArray(v, shape), i32s(at.map((t) => Math.floor(t / g.pageSize))), i32s(at.map((t) => t % g.pageSize)));
    return pool;
  }

  /** The dtype's neighbour of the value with these bits, one step toward +inf (dir 1) or -inf (-1). */
  function toward(bits: number, dir: 1 | -1): number {
    const magnitude = bits & 0x7fff;
    const next = magnitude === 0 ? (dir > 0 ? 1 : 0x8001) : ((bits & 0x8000) === 0) === dir > 0 ? bits + 1 : bits - 1;
    return dtype === 'f16' ? halfBitsToFloat(next) : bf16BitsToFloat(next);
  }

  it.each(DIGEST_VARIANTS)('page_digest_fp8 %s stores the reference digest of the dequantized keys, rounded outward', (variant) => {
    const g = geometry(headDim, pageSize);
    const pool = filledPool(g, 3);
    const pages = [4, 1, 2];
    const rowIds = [0, 2, 1];
    const digests = ref.createDigestStorage(3, g) as RefDigestStorage;
    const emuDigests = new EmuBuffer(dtype, digests.data.length).fill(-7);
    emulateKernel(pageDigestFp8Kernel, { dtype, headDim, pageSize, variant }).run({
      pool: byteBuffer(pool.bytes),
      slots: EmuBuffer.from('i32', pages),
      rows: EmuBuffer.from('i32', rowIds),
      digests: emuDigests,
      numPages: pages.length,
      numKvHeads: g.numKvHeads,
    });
    ref.digestPages(pool, i32s(pages), digests, i32s(rowIds), variant);
    const got = emuDigests.toFloat32();
    const bits = emuDigests.mem.a as Uint16Array;
    const want = digests.data;
    const key = new Float32Array(headDim);
    for (let r = 0; r < 3 * g.numKvHeads; r++) {
      // The largest key magnitude of each dimension: the f32 sums of cuboid-mean err relative to it.
      const largest = new Float32Array(headDim);
      const page = pages[rowIds.indexOf(Math.floor(r / g.numKvHeads))];
      for (let t = 0; t < pageSize; t++) {
        readKvRow(pool, page, 0, r % g.numKvHeads, t, key);
        for (let d = 0; d < headDim; d++) largest[d] = Math.max(largest[d], Math.abs(key[d]));
      }
      for (let d = 0; d < headDim; d++) {
        const up = r * 2 * headDim + d;
        const down = up + headDim;
        if (variant === 'cuboid-mean') {
          // The mean distance is summed in f32 (the reference: f64), so the box is rounded outward from a value within that sum's error.
          expectClose([got[up], got[down]], [want[up], want[down]], 2 * EPS[dtype], largest[d] * 2 ** -18);
          continue;
        }
        if (variant === 'sphere') {
          expect(got[up]).toBe(quantize([want[up]], dtype)[0]);
          if (d > 0) expect(got[down]).toBe(0);
          else expectClose([got[down]], [want[down]], EPS[dtype] * 4, 1e-6);
          continue;
        }
        expect(got[up]).toBeGreaterThanOrEqual(want[up]);
        expect(toward(bits[up], -1)).toBeLessThan(want[up]);
        expect(got[down]).toBeLessThanOrEqual(want[down]);
        expect(toward(bits[down], 1)).toBeGreaterThan(want[down]);
      }
    }
  });
});

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** An fp8 pool of `slots` pages, every token appended through the reference (valid codes and scale bytes throughout). */
function appendedPool(g: KvGeometry, slots: number, dtype: Dtype, rng: Rng, spread = false): RefFp8KvStorage {
  const pool = fp8Storage(g, slots);
  const tokens = slots * g.pageSize;
  const n = tokens * g.numKvHeads * g.headDim;
  // Rows at different magnitudes (2^-6 .. 2^3): per-token scales, as after RoPE.
  const magnitude = (i: number) => (spread ? 2 ** ((Math.floor(i / g.headDim) % 10) - 6) : 1);
  const k = quantize(
    rng.array(n, -1, 1).map((x, i) => x * magnitude(i)),
    dtype,
  );
  const v = quantize(
    rng.array(n, -1, 1).map((x, i) => x * magnitude(i + g.headDim)),
    dtype,
  );
  const shape = [tokens, g.numKvHeads, g.headDim];
  const at = [...Array(tokens).keys()];
  ref.appendKv(pool, ref.fromArray(k, shape), ref.fromArray(v, shape), i32s(at.map((t) => Math.floor(t / g.pageSize))), i32s(at.map((t) => t % g.pageSize)));
  return pool;
}

interface DecodeShape {
  dtype: Dtype;
  headDim: number;
  pageSize: number;
  numHeads: number;
  numKvHeads: number;
  lists: number;
}

interface DecodeCase extends DecodeShape {
  splits: number;
}

/** Page lists of `batch` rows: the tables ([batch, lists, maxPages]), page counts and last page lengths. */
interface DecodeLists {
  batch: number;
  maxPages: number;
  table: number[];
  counts: number[];
  lasts: number[];
}

/**
 * Runs paged_decode_fp8 (`splits` splits of `splitTokens`) and the merge over the
 * lists, checks the output against the reference within the 16-bit kernels'
 * tolerances and paged_token_scores_fp8 on the merge's lse, and returns the merged
 * output and lse.
 */
function checkDecode(
  c: DecodeShape,
  pool: RefFp8KvStorage,
  q: Float32Array,
  l: DecodeLists,
  splits: number,
  splitTokens: number,
): { out: Float32Array; lse: Float32Array } {
  const { batch, maxPages } = l;
  const scale = 1 / Math.sqrt(c.headDim);
  const group = gcd(c.numHeads / c.numKvHeads, c.numHeads / c.lists);
  const bytes = byteBuffer(pool.bytes);
  const lists = { pageTable: EmuBuffer.from('i32', l.table), pageCounts: EmuBuffer.from('i32', l.counts), lastPageLens: EmuBuffer.from('i32', l.lasts) };
  const shape = { batch, numHeads: c.numHeads, numKvHeads: c.numKvHeads, numLists: c.lists, maxPages, scale };
  const { out, lse } = runPagedDecode(
    pagedDecodeFp8Kernel,
    { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize, group },
    {
      q: EmuBuffer.from(c.dtype, q),
      pool: bytes,
      ...lists,
      ...shape,
      numSplits: splits,
      splitTokens,
    },
  );
  const want = ref.pagedAttention({
    q: ref.fromArray(q, [batch, c.numHeads, c.headDim]),
    storage: pool,
    pageTable: ref.fromArray(l.table, [batch, c.lists, maxPages], 'i32'),
    pageCounts: ref.fromArray(l.counts, [batch, c.lists], 'i32'),
    lastPageLens: ref.fromArray(l.lasts, [batch, c.lists], 'i32'),
    scale,
    returnTokenScores: true,
  });
  // The 16-bit kernels' tolerances: the output is rounded to T once.
  const eps = c.dtype === 'f16' ? 2 ** -10 : 2 ** -7;
  expectClose(out.toFloat32(), asRef(want.out).f32, eps, eps);
  const scores = new EmuBuffer('f32', batch * c.lists * maxPages * c.pageSize).fill(-1);
  emulateKernel(pagedTokenScoresFp8Kernel, { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize }).run({
    q: EmuBuffer.from(c.dtype, q),
    pool: bytes,
    ...lists,
    lse,
    scores,
    ...shape,
  });
  expectClose(scores.toFloat32(), asRef(want.tokenScores!).f32, 2e-3, 1e-5);
  return { out: out.toFloat32(), lse: lse.toFloat32() };
}

describe('paged_decode_fp8 + paged_decode_merge and paged_token_scores_fp8 match the reference on fp8 pages', () => {
  it.each([
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 8, numKvHeads: 2, lists: 1, splits: 3 },
    { dtype: 'bf16', headDim: 128, pageSize: 32, numHeads: 4, numKvHeads: 2, lists: 2, splits: 2 },
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 8, numKvHeads: 2, lists: 8, splits: 2 },
    { dtype: 'f16', headDim: 32, pageSize: 2, numHeads: 8, numKvHeads: 1, lists: 1, splits: 2 },
    { dtype: 'bf16', headDim: 64, pageSize: 8, numHeads: 8, numKvHeads: 1, lists: 1, splits: 1 },
  ] satisfies DecodeCase[])('$dtype hd$headDim ps$pageSize heads $numHeads/$numKvHeads, $lists list(s), $splits split(s)', (c) => {
    const g = { ...geometry(c.headDim, c.pageSize, c.numKvHeads, c.numHeads) };
    const rng = new Rng(11);
    const slots = 12;
    const pool = appendedPool(g, slots, c.dtype, rng, true);
    const batch = 2;
    const maxPages = 5;
    const table: number[] = [];
    const counts: number[] = [];
    const lasts: number[] = [];
    for (let r = 0; r < batch; r++) {
      for (let l = 0; l < c.lists; l++) {
        table.push(...rng.shuffle([...Array(slots).keys()]).slice(0, maxPages));
        counts.push(1 + rng.int(maxPages));
        lasts.push(1 + rng.int(c.pageSize));
      }
    }
    const q = quantize(rng.array(batch * c.numHeads * c.headDim, -2, 2), c.dtype);
    checkDecode(c, pool, q, { batch, maxPages, table, counts, lasts }, c.splits, splitTokensFor(maxPages * c.pageSize, c.splits));
  });
});

describe('paged_decode_fp8 over splits of PAGED_DECODE_SPLIT_TOKENS, each many steps longer than its ring of stages', () => {
  // Lists of 557 = 512 + 45 and 1101 = 2 * 512 + 77 tokens (plus the list's index):
  // whole splits of 512 tokens (16 to 32 steps, the ring wrapping several times), then a
  // split boundary and a last split of a step or two with a clamped and masked tail
  // (no length is a multiple of any step). Row 0 alone gives the same bits as beside
  // row 1, whose longer lists add a split.
  it.each([
    // Groups 1, 4 and 8 (steps of 32, 32 and 16 tokens), and 1 at Llama-2-7B's head dim.
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 2, numKvHeads: 2, lists: 1 },
    { dtype: 'bf16', headDim: 64, pageSize: 16, numHeads: 4, numKvHeads: 1, lists: 1 },
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 8, numKvHeads: 1, lists: 1 },
    { dtype: 'f16', headDim: 128, pageSize: 32, numHeads: 2, numKvHeads: 2, lists: 2 },
  ] satisfies DecodeShape[])('$dtype hd$headDim ps$pageSize heads $numHeads/$numKvHeads, $lists list(s)', (c) => {
    const g = geometry(c.headDim, c.pageSize, c.numKvHeads, c.numHeads);
    const rng = new Rng(23);
    const lengths = [557, 1101];
    const pagesOf = (n: number) => Math.ceil(n / c.pageSize);
    const slots = pagesOf(lengths[1] + c.lists) + 4;
    const pool = appendedPool(g, slots, c.dtype, rng, true);
    const rowLists = lengths.map((n) =>
      Array.from({ length: c.lists }, (_, l) => ({ n: n + l, pages: rng.shuffle([...Array(slots).keys()]).slice(0, pagesOf(n + l)) })),
    );
    const q = quantize(rng.array(2 * c.numHeads * c.headDim, -2, 2), c.dtype);
    const run = (rows: number[]) => {
      const maxPages = Math.max(...rows.flatMap((r) => rowLists[r].map((x) => x.pages.length)));
      const { splits, splitTokens } = pagedDecodeSplits({ tokens: maxPages * c.pageSize });
      expect(splitTokens).toBe(PAGED_DECODE_SPLIT_TOKENS);
      const lists = rows.flatMap((r) => rowLists[r]);
      const width = c.numHeads * c.headDim;
      return checkDecode(
        c,
        pool,
        q.slice(rows[0] * width, (rows.at(-1)! + 1) * width),
        {
          batch: rows.length,
          maxPages,
          table: lists.flatMap((x) => [...x.pages, ...Array(maxPages - x.pages.length).fill(0)]),
          counts: lists.map((x) => x.pages.length),
          lasts: lists.map((x) => x.n - (x.pages.length - 1) * c.pageSize),
        },
        splits,
        splitTokens,
      );
    };
    const beside = run([0, 1]);
    const alone = run([0]);
    expect(Array.from(beside.out.subarray(0, c.numHeads * c.headDim))).toEqual(Array.from(alone.out));
    expect(Array.from(beside.lse.subarray(0, c.numHeads))).toEqual(Array.from(alone.lse));
  });
});

interface PrefillCase {
  dtype: Dtype;
  headDim: number;
  pageSize: number;
  numHeads: number;
  numKvHeads: number;
  first: number;
  rows: number;
  splits: number;
}

describe('paged_prefill_fp8 + paged_decode_merge match the reference paged attention of each row over its causal list of fp8 pages', () => {
  it.each([
    // A chunk after a cached prefix, split three ways.
    { dtype: 'f16', headDim: 64, pageSize: 16, numHeads: 4, numKvHeads: 2, first: 50, rows: 12, splits: 3 },
    // A start inside a page, pages smaller than a key tile, more splits than some rows have keys.
    { dtype: 'bf16', headDim: 32, pageSize: 4, numHeads: 2, numKvHeads: 1, first: 7, rows: 30, splits: 4 },
  ] satisfies PrefillCase[])('$dtype hd$headDim ps$pageSize heads $numHeads/$numKvHeads, $rows rows from position $first, $splits split(s)', (c) => {
    const g = geometry(c.headDim, c.pageSize, c.numKvHeads, c.numHeads);
    const rng = new Rng(5);
    const end = c.first + c.rows;
    const pages = Math.ceil(end / c.pageSize);
    const slotCount = pages + 3;
    const pool = appendedPool(g, slotCount, c.dtype, rng);
    const slots = rng.shuffle([...Array(slotCount).keys()]).slice(0, pages);
    const q = quantize(rng.array(c.rows * c.numHeads * c.headDim, -2, 2), c.dtype);
    const scale = 1 / Math.sqrt(c.headDim);
    const partialOut = new EmuBuffer('f32', c.rows * c.numHeads * c.splits * c.headDim).fill(Number.NaN);
    const partialLse = new EmuBuffer('f32', c.rows * c.numHeads * c.splits).fill(Number.NaN);
    emulateKernel(pagedPrefillFp8Kernel, { dtype: c.dtype, headDim: c.headDim, pageSize: c.pageSize }).run({
      q: EmuBuffer.from(c.dtype, q),
      pool: byteBuffer(pool.bytes),
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
    // paged_prefill's tolerances: P is rounded to T before P V, and the output once.
    const eps = c.dtype === 'f16' ? 2 ** -9 : 2 ** -6;
    expectClose(out.toFloat32(), asRef(want.out).f32, eps, eps);
    expect(lse.toFloat32().every(Number.isFinite)).toBe(true);
  });
});

describe('fp8 page kernels refuse shapes they cannot lay out', () => {
  it('kv_append_fp8 needs a power-of-two head dim (a head is one aligned segment of a warp)', () => {
    expect(kvAppendFp8Kernel.validate?.({ dtype: 'f16', headDim: 96, pageSize: 16 })).toMatch(/power of two/);
    expect(kvAppendFp8Kernel.validate?.({ dtype: 'f16', headDim: 128, pageSize: 16 })).toBeUndefined();
  });
});
