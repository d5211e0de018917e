import { describe, expect, it } from 'vitest';
import type { CacheOptions, KvGeometry } from '../config.js';
import { type ArkvaleError, ConfigError, PoolExhaustedError, SequenceError } from '../errors.js';
import { CacheHarness } from '../test-support/harness.js';
import { KvCache } from './kv-cache.js';
import { checkConsistency } from './consistency.js';
import { ReferenceBackend } from '../reference/reference-backend.js';

const geometry: KvGeometry = { numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 4, pageSize: 4, bytesPerElement: 2 };
const make = (options: Partial<CacheOptions>, g: Partial<KvGeometry> = {}) =>
  new KvCache({
    geometry: { ...geometry, ...g },
    options: { policy: 'arkvale', devicePages: 16, ...options } as CacheOptions,
    backend: new ReferenceBackend(),
  });

describe('bad arguments name the problem', () => {
  it('rejects an unknown policy', () => {
    expect(() => make({ policy: 'lru' as never })).toThrow(/unknown policy "lru".*full, streaming-llm, h2o, tova, quest, arkvale/);
  });
  it('rejects a page size that is not a power of two', () => {
    expect(() => make({}, { pageSize: 12 })).toThrow(ConfigError);
    expect(() => make({}, { pageSize: 12 })).toThrow(/page size must be a power of two.*12/);
  });
  it('rejects a budget smaller than sinks plus window', () => {
    expect(() => make({ budgetTokens: 8, sinkPages: 1, windowPages: 2 })).toThrow(
      /budget of 8 tokens \(2 pages of 4\) is smaller than sinks plus window \(1 \+ 2 pages\)/,
    );
  });
  it('rejects heads that do not group, a zero window, and top-k larger than the budget', () => {
    expect(() => make({}, { numHeads: 3, numKvHeads: 2 })).toThrow(/multiple of numKvHeads/);
    expect(() => make({ windowPages: 0 })).toThrow(/windowPages must be an integer >= 1/);
    expect(() => make({ budgetTokens: 32, topK: 9 })).toThrow(/topK \(9\).*exceeds the 5 middle page/);
  });
  it('rejects freeing a sequence twice, and leaves the rest alone', () => {
    const h = new CacheHarness(geometry, { policy: 'arkvale', budgetTokens: 16, devicePages: 32 });
    const a = h.admit(9);
    const b = h.admit(5);
    h.free(a);
    const before = h.cache.stats();
    expect(() => h.cache.free(a)).toThrow(SequenceError);
    expect(() => h.cache.free(a)).toThrow(`cannot free sequence ${a}: it does not exist (already freed?)`);
    expect(h.cache.stats()).toEqual(before);
    checkConsistency(h.cache);
    h.free(b);
    expect(h.cache.store.devicePool.used).toBe(0);
  });
  it('rejects an exhausted pool without changing anything', () => {
    const h = new CacheHarness(geometry, { policy: 'arkvale', budgetTokens: 16, fullLayers: 0, devicePages: 10, hostPages: 64 });
    const a = h.admit(16); // 4 pages per layer
    expect(h.cache.store.devicePool.free).toBe(2);
    const before = h.cache.stats();
    let error: unknown;
    try {
      h.cache.admit(30); // 8 pages per layer while prefilling: refused before it is registered
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PoolExhaustedError);
    expect((error as ArkvaleError).code).toBe('POOL_EXHAUSTED');
    expect((error as Error).message).toMatch(/^device page pool exhausted: \d+ page\(s\) requested, \d+ free of 10/);
    expect(h.cache.stats()).toEqual(before);
    expect(h.cache.sequenceIds).toEqual([a]);
    checkConsistency(h.cache);
    h.checkData();
  });
  it('rejects decode steps that name a sequence twice or an unknown one', () => {
    const h = new CacheHarness(geometry, { policy: 'full', devicePages: 32 });
    const a = h.admit(3);
    expect(() => h.cache.beginStep([a, a])).toThrow(/lists a sequence twice/);
    expect(() => h.cache.beginStep([a, 99])).toThrow(/sequence 99 does not exist/);
    expect(h.cache.length(a)).toBe(3);
    expect(() => h.cache.admit(0)).toThrow(/at least one token/);
  });
});
