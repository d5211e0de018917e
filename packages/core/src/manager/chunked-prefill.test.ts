import { describe, expect, it } from 'vitest';
import type { Tensor } from '../backend.js';
import { POLICY_NAMES } from '../config.js';
import type { CacheOptions, KvGeometry, PolicyName } from '../config.js';
import { ArkvaleError } from '../errors.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { randomArray, rng } from '../test-support/random.js';
import { checkConsistency } from './consistency.js';
import { KvCache } from './kv-cache.js';

const geometry: KvGeometry = { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };
const backend = new ReferenceBackend();
const scale = 1 / Math.sqrt(geometry.headDim);

function options(policy: PolicyName): CacheOptions {
  return { policy, budgetTokens: 16, fullLayers: policy === 'arkvale' ? 1 : 0, devicePages: 200, hostPages: 200 };
}

/** Per layer: q, k, v of `rows` tokens. */
function randomLayers(next: () => number, rows: number): { q: number[]; k: number[]; v: number[] }[] {
  const { numHeads: h, numKvHeads: kv, headDim: d } = geometry;
  return Array.from({ length: geometry.numLayers }, () => ({
    q: Array.from(randomArray(next, rows * h * d)),
    k: Array.from(randomArray(next, rows * kv * d)),
    v: Array.from(randomArray(next, rows * kv * d)),
  }));
}

function rowsOf(data: { q: number[]; k: number[]; v: number[] }, start: number, count: number): [Tensor, Tensor, Tensor] {
  const { numHeads: h, numKvHeads: kv, headDim: d } = geometry;
  return [
    backend.fromArray(data.q.slice(start * h * d, (start + count) * h * d), [count, h, d]),
    backend.fromArray(data.k.slice(start * kv * d, (start + count) * kv * d), [count, kv, d]),
    backend.fromArray(data.v.slice(start * kv * d, (start + count) * kv * d), [count, kv, d]),
  ];
}

const read = (t: Tensor) => Array.from(backend.readSync(t));

function expectClose(a: number[], b: number[]): void {
  expect(a.length).toBe(b.length);
  const worst = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  expect(worst).toBeLessThan(1e-5);
}

/** Decodes `steps` random tokens in both caches and compares their attention outputs. */
function decodeBoth(one: KvCache, a: number, chunked: KvCache, b: number, next: () => number, steps: number): void {
  for (let s = 0; s < steps; s++) {
    const layers = randomLayers(next, 1);
    const sa = one.beginStep([a]);
    const sb = chunked.beginStep([b]);
    layers.forEach((data, l) => {
      const [q, k, v] = rowsOf(data, 0, 1);
      expectClose(read(chunked.decodeLayer(sb, l, q, k, v, scale)), read(one.decodeLayer(sa, l, q, k, v, scale)));
    });
  }
}

describe('chunked prefill', () => {
  for (const policy of POLICY_NAMES) {
    it(`${policy}: chunks give the one-shot prefill's attention, pages and decode`, () => {
      const next = rng(7);
      const length = 45;
      const prompt = randomLayers(next, length);
      const one = new KvCache({ geometry, options: options(policy), backend });
      const chunked = new KvCache({ geometry, options: options(policy), backend });
      const a = one.admit(length);
      const expected = prompt.map((data, l) => read(one.prefillLayer(a, l, ...rowsOf(data, 0, length), scale)));
      const b = chunked.admitChunked(length);
      const got: number[][] = prompt.map(() => []);
      for (const count of [13, 3, 20, 9]) {
        const chunk = chunked.beginPrefillChunk(b, count);
        prompt.forEach((data, l) => got[l].push(...read(chunked.prefillChunkLayer(chunk, l, ...rowsOf(data, chunk.start, count), scale))));
      }
      expect(chunked.promptRemaining(b)).toBe(0);
      prompt.forEach((_, l) => {
        expectClose(got[l], expected[l]);
        const [va, vb] = [one.view(a, l), chunked.view(b, l)];
        if (va.kind === 'page' && vb.kind === 'page') expect(vb.resident).toEqual(va.resident);
        else expect(vb).toMatchObject({ kind: 'token', positions: (va as { positions: number[] }).positions });
      });
      checkConsistency(chunked);
      decodeBoth(one, a, chunked, b, next, 10);
      checkConsistency(chunked);
      expect(chunked.stats().residentPages).toBe(one.stats().residentPages);
      chunked.free(b);
      expect(chunked.stats().device.used).toBe(0);
      expect(chunked.stats().host.used).toBe(0);
    });
  }

  it('refuses a bad chunk and a short pool without changing anything', () => {
    // Both layers are H2O's token layers (none kept whole).
    const cache = new KvCache({ geometry, options: { policy: 'h2o', budgetTokens: 12, fullLayers: 0, devicePages: 9, hostPages: 4 }, backend });
    const id = cache.admitChunked(30);
    const before = JSON.stringify(cache.stats());
    expect(() => cache.beginPrefillChunk(id, 31)).toThrow(ArkvaleError);
    expect(() => cache.beginPrefillChunk(id, 0)).toThrow(ArkvaleError);
    // The last chunk needs the prompt's 8 pages per layer plus the cells: more than 9.
    expect(cache.chunkedPrefillPeak(30).device).toBe(2 * 8 + 2 * 3);
    expect(() => cache.beginPrefillChunk(id, 30)).toThrow(/device page pool exhausted/);
    expect(JSON.stringify(cache.stats())).toBe(before);
    expect(() => cache.prefillLayer(id, 0, ...rowsOf(randomLayers(rng(1), 30)[0], 0, 30), scale)).toThrow(/chunks/);
    const chunk = cache.beginPrefillChunk(id, 8);
    expect(() => cache.beginPrefillChunk(id, 4)).toThrow(/still to write/);
    expect(() => cache.beginStep([id])).toThrow(/not prefilled/);
    const data = randomLayers(rng(2), 8);
    expect(() => cache.prefillChunkLayer(chunk, 0, ...rowsOf(data[0], 0, 7), scale)).toThrow(/expects 8 rows/);
    cache.prefillChunkLayer(chunk, 0, ...rowsOf(data[0], 0, 8), scale);
    checkConsistency(cache);
    cache.free(id);
    expect(cache.stats().device.used).toBe(0);
  });
});
