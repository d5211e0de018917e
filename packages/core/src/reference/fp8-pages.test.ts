import { describe, expect, it } from 'vitest';
import type { PagedAttentionArgs } from '../backend.js';
import { DIGEST_VARIANTS, POLICY_NAMES, type CacheOptions, type KvGeometry, fp8ScaleOffset, kvBytesPerToken, pageBytes, validateGeometry } from '../config.js';
import { e4m3ScaleFactor, e4m3ToFloat, quantizeHead } from '../kv-fp8.js';
import { CacheHarness } from '../test-support/harness.js';
import { randomArray, rng } from '../test-support/random.js';
import { RefFp8KvStorage, type RefDigestStorage, RefKvStorage, gatherDequantized, readKvRow } from './kv.js';
import { ReferenceBackend } from './reference-backend.js';
import { asRef } from './tensor.js';

const backend = new ReferenceBackend();
const geometry = (kvDtype?: 'fp8', o: Partial<KvGeometry> = {}): KvGeometry => ({
  numLayers: 1,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  pageSize: 4,
  bytesPerElement: 4,
  ...(kvDtype ? { kvDtype } : {}),
  ...o,
});

/** Appends `tokens` random tokens (K and V of every head, scaled by `scale`) at (slots[i], offsets[i]). */
function append(storage: RefFp8KvStorage | RefKvStorage, slots: number[], offsets: number[], seed: number, scale = 3) {
  const g = storage.geometry;
  const next = rng(seed);
  const k = randomArray(next, slots.length * g.numKvHeads * g.headDim, scale);
  const v = randomArray(next, slots.length * g.numKvHeads * g.headDim, scale);
  const shape = [slots.length, g.numKvHeads, g.headDim];
  backend.appendKv(
    storage,
    backend.fromArray(k, shape),
    backend.fromArray(v, shape),
    backend.fromArray(slots, [slots.length], 'i32'),
    backend.fromArray(offsets, [offsets.length], 'i32'),
  );
  return { k, v };
}

/** A float32 pool holding exactly the values (dequantized) an fp8 pool holds, read row by row. */
function dequantizedCopy(s: RefFp8KvStorage): RefKvStorage {
  const { kvDtype: _, ...g } = s.geometry;
  const out = new RefKvStorage(s.location, s.slots, g);
  for (let slot = 0; slot < s.slots; slot++)
    for (const kv of [0, 1] as const)
      for (let h = 0; h < g.numKvHeads; h++) for (let t = 0; t < g.pageSize; t++) out.data.set(readKvRow(s, slot, kv, h, t), out.offset(slot, kv, h, t));
  return out;
}

const bits = (a: ArrayLike<number>) => new Uint32Array(Float32Array.from(a).buffer);

describe('fp8 page geometry', () => {
  it('slots hold codes, then a scale byte per token, head and K|V, padded to 16 bytes', () => {
    // 2 * 2 heads * 4 tokens * 8 dims = 128 code bytes, 16 scale bytes.
    expect(pageBytes(geometry('fp8'))).toBe(144);
    expect(fp8ScaleOffset(geometry('fp8'))).toBe(128);
    expect(pageBytes(geometry())).toBe(2 * 2 * 4 * 8 * 4);
    // 2 * 1 * 2 * 3 = 12 code bytes (-> 16), 4 scale bytes: 20 -> 32.
    expect(pageBytes(geometry('fp8', { numKvHeads: 1, pageSize: 2, headDim: 3 }))).toBe(32);
    // The CUDA shapes (head dims a multiple of 32): 2 * H * P * (D + 1), about half of f16's 2 * H * P * D * 2.
    const llama = { numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128, pageSize: 32, bytesPerElement: 2 };
    expect(pageBytes({ ...llama, kvDtype: 'fp8' })).toBe(2 * 32 * 32 * 129);
    expect(kvBytesPerToken({ ...llama, kvDtype: 'fp8' })).toBe(2 * 32 * 129);
    expect(kvBytesPerToken(llama)).toBe(2 * 32 * 128 * 2);
    expect(() => validateGeometry({ ...llama, kvDtype: 'fp4' as 'fp8' })).toThrow('kvDtype must be "fp8" or absent');
  });

  it('the reference backend makes an fp8 pool for an fp8 geometry', () => {
    const s = backend.createKvStorage('host', 3, geometry('fp8'));
    expect(s).toBeInstanceOf(RefFp8KvStorage);
    expect((s as RefFp8KvStorage).bytes.length).toBe(3 * 144);
    expect(backend.createKvStorage('host', 3, geometry())).toBeInstanceOf(RefKvStorage);
  });
});

describe('fp8 pages on the reference backend', () => {
  it('appendKv writes each row quantized on its own, in the slot layout', () => {
    const s = backend.createKvStorage('device', 4, geometry('fp8')) as RefFp8KvStorage;
    const g = s.geometry;
    const { k, v } = append(s, [2, 0, 2], [3, 0, 1], 1);
    const codes = new Uint8Array(g.headDim);
    [
      [2, 3],
      [0, 0],
      [2, 1],
    ].forEach(([slot, token], i) => {
      for (let h = 0; h < g.numKvHeads; h++) {
        for (const [kv, src] of [
          [0, k],
          [1, v],
        ] as const) {
          const scale = quantizeHead(src, (i * g.numKvHeads + h) * g.headDim, g.headDim, codes, 0);
          const at = slot * 144 + ((kv * g.numKvHeads + h) * g.pageSize + token) * g.headDim;
          expect(s.codeOffset(slot, kv, h, token)).toBe(at);
          expect(s.scaleOffset(slot, kv, h, token)).toBe(slot * 144 + 128 + (kv * g.numKvHeads + h) * g.pageSize + token);
          expect([...s.bytes.subarray(at, at + g.headDim)]).toEqual([...codes]);
          expect(s.bytes[s.scaleOffset(slot, kv, h, token)]).toBe(scale);
          // Dequantized: code value times 2^(s - 127).
          expect([...readKvRow(s, slot, kv, h, token)]).toEqual([...codes].map((c) => e4m3ToFloat(c) * e4m3ScaleFactor(scale)));
        }
      }
    });
    expect(() => append(s, [4], [0], 2)).toThrow('device slot 4 outside 0..3');
    expect(() => append(s, [0], [4], 2)).toThrow('offset 4 outside the page');
  });

  it('the bytes of a page do not depend on how its tokens arrived: at once, one by one, shuffled', () => {
    const g = geometry('fp8');
    const n = 3 * g.pageSize;
    const slots = Array.from({ length: n }, (_, t) => 2 - Math.floor(t / g.pageSize));
    const offsets = Array.from({ length: n }, (_, t) => t % g.pageSize);
    const bulk = backend.createKvStorage('device', 3, g) as RefFp8KvStorage;
    const { k, v } = append(bulk, slots, offsets, 3);
    const one = backend.createKvStorage('device', 3, g) as RefFp8KvStorage;
    const shuffled = backend.createKvStorage('device', 3, g) as RefFp8KvStorage;
    const row = g.numKvHeads * g.headDim;
    const put = (s: RefFp8KvStorage, t: number) =>
      backend.appendKv(
        s,
        backend.fromArray(k.subarray(t * row, (t + 1) * row), [1, g.numKvHeads, g.headDim]),
        backend.fromArray(v.subarray(t * row, (t + 1) * row), [1, g.numKvHeads, g.headDim]),
        backend.fromArray([slots[t]], [1], 'i32'),
        backend.fromArray([offsets[t]], [1], 'i32'),
      );
    for (let t = 0; t < n; t++) put(one, t);
    const order = Array.from({ length: n }, (_, t) => (t * 5) % n);
    // Overwriting a cell (as token-level policies do) leaves only the last write.
    put(shuffled, 7);
    append(shuffled, [slots[7]], [offsets[7]], 99);
    for (const t of order) put(shuffled, t);
    expect(one.bytes).toEqual(bulk.bytes);
    expect(shuffled.bytes).toEqual(bulk.bytes);
  });

  it('paged attention equals float32 paged attention over the dequantized values, bit for bit (G = 1, KV heads, heads; token scores)', () => {
    const g = geometry('fp8', { pageSize: 4, headDim: 8 });
    const s = backend.createKvStorage('device', 9, g) as RefFp8KvStorage;
    // Fill every slot; lists share slots, end in partial pages, and hold stale entries past their counts.
    append(
      s,
      Array.from({ length: 9 * g.pageSize }, (_, t) => Math.floor(t / g.pageSize)),
      Array.from({ length: 9 * g.pageSize }, (_, t) => t % g.pageSize),
      12,
      40,
    );
    const f32 = dequantizedCopy(s);
    for (const groups of [1, g.numKvHeads, g.numHeads]) {
      const b = 2;
      const maxPages = 5;
      const table = Int32Array.from({ length: b * groups * maxPages }, (_, i) => (i * 7 + groups) % 9);
      const counts = Int32Array.from({ length: b * groups }, (_, i) => 1 + ((i * 3 + groups) % maxPages));
      const lasts = Int32Array.from({ length: b * groups }, (_, i) => 1 + ((i + groups) % g.pageSize));
      table[maxPages - 1] = counts[0] < maxPages ? -7 : table[maxPages - 1];
      const args = (storage: RefFp8KvStorage | RefKvStorage): PagedAttentionArgs => ({
        q: backend.fromArray(randomArray(rng(groups), b * g.numHeads * g.headDim, 2), [b, g.numHeads, g.headDim]),
        storage,
        pageTable: backend.fromArray(table, [b, groups, maxPages], 'i32'),
        pageCounts: backend.fromArray(counts, [b, groups], 'i32'),
        lastPageLens: backend.fromArray(lasts, [b, groups], 'i32'),
        scale: 1 / Math.sqrt(g.headDim),
        returnTokenScores: true,
      });
      const got = backend.pagedAttention(args(s));
      const want = backend.pagedAttention(args(f32));
      expect(bits(backend.readSync(got.out))).toEqual(bits(backend.readSync(want.out)));
      expect(bits(backend.readSync(got.tokenScores!))).toEqual(bits(backend.readSync(want.tokenScores!)));
    }
  });

  it('fp8 attention stays close to float32 attention over the original values', () => {
    const g = geometry('fp8', { headDim: 32, pageSize: 8 });
    const { kvDtype: _, ...g32 } = g;
    const s8 = backend.createKvStorage('device', 4, g);
    const s32 = backend.createKvStorage('device', 4, g32);
    const slots = Array.from({ length: 30 }, (_, t) => Math.floor(t / 8));
    const offsets = slots.map((_, t) => t % 8);
    append(s8 as RefFp8KvStorage, slots, offsets, 21, 1);
    append(s32 as RefKvStorage, slots, offsets, 21, 1);
    const args = (storage: typeof s8): PagedAttentionArgs => ({
      q: backend.fromArray(randomArray(rng(5), g.numHeads * g.headDim, 1), [1, g.numHeads, g.headDim]),
      storage,
      pageTable: backend.fromArray([0, 1, 2, 3], [1, 1, 4], 'i32'),
      pageCounts: backend.fromArray([4], [1, 1], 'i32'),
      lastPageLens: backend.fromArray([6], [1, 1], 'i32'),
      scale: 1 / Math.sqrt(g.headDim),
    });
    const a = backend.readSync(backend.pagedAttention(args(s8)).out);
    const b = backend.readSync(backend.pagedAttention(args(s32)).out);
    // Values in [-1, 1] keep about 2^-4 relative error each; the weighted means keep less.
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(0.03);
  });

  it('digests are those of the dequantized keys, for every variant', () => {
    const g = geometry('fp8');
    const s = backend.createKvStorage('device', 3, g) as RefFp8KvStorage;
    append(
      s,
      Array.from({ length: 12 }, (_, t) => Math.floor(t / 4)),
      Array.from({ length: 12 }, (_, t) => t % 4),
      31,
    );
    const f32 = dequantizedCopy(s);
    for (const variant of DIGEST_VARIANTS) {
      const d8 = backend.createDigestStorage(3, g) as RefDigestStorage;
      const d32 = backend.createDigestStorage(3, f32.geometry) as RefDigestStorage;
      backend.digestPages(s, backend.fromArray([2, 0, 1], [3], 'i32'), d8, backend.fromArray([0, 1, 2], [3], 'i32'), variant);
      backend.digestPages(f32, backend.fromArray([2, 0, 1], [3], 'i32'), d32, backend.fromArray([0, 1, 2], [3], 'i32'), variant);
      expect(bits(d8.data)).toEqual(bits(d32.data));
    }
  });

  it('page copies and recalls move codes and scales as bytes; pools of different formats are refused', () => {
    const g = geometry('fp8');
    const device = backend.createKvStorage('device', 4, g) as RefFp8KvStorage;
    const host = backend.createKvStorage('host', 4, g) as RefFp8KvStorage;
    append(
      device,
      Array.from({ length: 8 }, (_, t) => 1 + Math.floor(t / 4)),
      Array.from({ length: 8 }, (_, t) => t % 4),
      41,
    );
    const page = (s: RefFp8KvStorage, slot: number) => [...s.bytes.subarray(slot * 144, (slot + 1) * 144)];
    backend.copyPages(device, [1, 2], host, [3, 0]);
    expect(page(host, 3)).toEqual(page(device, 1));
    expect(page(host, 0)).toEqual(page(device, 2));
    // recallListed: row 0 copies host 3 -> device 0 and host 0 -> device 3.
    backend.recallListed(host, device, backend.fromArray([2, 3, 0, 0, 3], [1, 5], 'i32'));
    expect(page(device, 0)).toEqual(page(device, 1));
    expect(page(device, 3)).toEqual(page(device, 2));
    const plain = backend.createKvStorage('host', 4, geometry());
    expect(() => backend.copyPages(device, [1], plain, [0])).toThrow('different page formats');
    expect(() => backend.copyPages(plain, [1], device, [0])).toThrow('different page formats');
  });

  it('gatherDequantized lists each slot once and checks listed slots only', () => {
    const g = geometry('fp8');
    const s = backend.createKvStorage('device', 5, g) as RefFp8KvStorage;
    append(s, [4, 4, 2], [0, 1, 3], 51);
    const table = backend.fromArray([4, 2, -1, 2, -9, -9], [2, 1, 3], 'i32');
    const gathered = gatherDequantized(s, asRef(table), asRef(backend.fromArray([2, 1], [2, 1], 'i32')));
    expect(gathered.storage.slots).toBe(2);
    expect([...gathered.pageTable.i32]).toEqual([0, 1, -1, 1, -9, -9]);
    expect(readKvRow(gathered.storage, 0, 1, 1, 1)).toEqual(readKvRow(s, 4, 1, 1, 1));
    expect(() => gatherDequantized(s, asRef(backend.fromArray([7], [1, 1, 1], 'i32')), asRef(backend.fromArray([1], [1, 1], 'i32')))).toThrow(
      'device slot 7 outside 0..4',
    );
  });
});

describe('fp8 pages under every policy', () => {
  // Rows that are already what fp8 pages hold (quantized, then dequantized) come back exactly, so a cache of fp8 pages
  // must decide, keep and attend exactly as one of float32 pages given the same rows: token-level policies (their
  // token scores and cell overwrites), page policies (digests of dequantized keys, backups, recalls), forks.
  it.each(POLICY_NAMES.map((p) => [p]))('%s: the same outputs and the same pages as float32 pages of the rounded rows', (policy) => {
    const g = { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 2, bytesPerElement: 4 };
    const options: CacheOptions = { policy, budgetTokens: 8, sinkPages: 1, windowPages: 1, fullLayers: 1, sinkTokens: 2, devicePages: 40, hostPages: 60 };
    const fp8 = new CacheHarness({ ...g, kvDtype: 'fp8' }, options, 7, true);
    const f32 = new CacheHarness(g, options, 7, true);
    const run = (h: CacheHarness) => {
      const outs: number[][] = [];
      const a = h.admit(9);
      const b = h.admit(5);
      for (let i = 0; i < 6; i++) outs.push(...h.step([a, b]).map((o) => [...bits(o)]));
      const c = h.fork(a);
      for (let i = 0; i < 4; i++) outs.push(...h.step([c, b]).map((o) => [...bits(o)]));
      h.checkData();
      const views = [a, b, c].flatMap((id) => [0, 1].map((l) => h.cache.view(id, l)));
      // Page bytes differ (fp8 pages are smaller); every count must not.
      const stats = JSON.parse(JSON.stringify(h.cache.stats(), (key, value) => (/bytes/i.test(key) ? undefined : value)));
      return { outs, views, stats };
    };
    const x = run(fp8);
    const y = run(f32);
    expect(x.views).toEqual(y.views);
    expect(x.stats).toEqual(y.stats);
    expect(x.outs).toEqual(y.outs);
    // Each policy that evicts evicted something on the way (Quest keeps every page and attends to a selection).
    if (policy !== 'full' && policy !== 'quest') expect(x.stats.evictions + x.stats.evictedTokens).toBeGreaterThan(0);
  });
});
