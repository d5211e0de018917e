import { describe, expect, it, vi } from 'vitest';
import type { SelectOn } from '../config.js';
import { CacheHarness } from '../test-support/harness.js';
import { checkConsistency } from './consistency.js';

const geometry = { numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };

/** Runs 12 steps of three sequences over the budget and counts host reads made inside decodeLayer. */
function readsInsideSteps(policy: 'arkvale' | 'quest' | 'h2o' | 'tova', selectOn: SelectOn) {
  const h = new CacheHarness(
    geometry,
    { policy, budgetTokens: 16, sinkPages: 1, windowPages: 1, fullLayers: 1, devicePages: 256, hostPages: 256, selectOn },
    7,
  );
  const ids = [40, 53, 61].map((n) => h.admit(n));
  // Host reads made by the cache inside decodeLayer (the harness reads K/V and outputs for itself).
  let inside = false;
  let reads = 0;
  const read = h.backend.readSync.bind(h.backend);
  vi.spyOn(h.backend, 'readSync').mockImplementation((t) => {
    if (inside) reads++;
    return read(t);
  });
  const decode = h.cache.decodeLayer.bind(h.cache);
  vi.spyOn(h.cache, 'decodeLayer').mockImplementation((...args) => {
    inside = true;
    try {
      return decode(...args);
    } finally {
      inside = false;
    }
  });
  const before = h.cache.stats();
  for (let s = 0; s < 12; s++) h.step(ids);
  // What the pools hold is still exactly what was written, wherever pages moved.
  h.checkData();
  checkConsistency(h.cache);
  const after = h.cache.stats();
  return { reads, recalls: after.recalls - before.recalls, evictedTokens: after.evictedTokens - before.evictedTokens };
}

describe('a batched decode step', () => {
  it.each([
    ['arkvale', 'host'],
    ['quest', 'host'],
  ] as const)('%s (selectOn %s, deciding on the host) reads every sequence’s page estimates of a layer with one host synchronisation', (policy, selectOn) => {
    const { reads, recalls } = readsInsideSteps(policy, selectOn);
    // One read per scored layer per step, not one per sequence (three here); the
    // unbudgeted first layer keeps every page and scores none.
    expect(reads).toBe(12 * (geometry.numLayers - 1));
    if (policy === 'arkvale') expect(recalls).toBeGreaterThan(0);
  });

  it('arkvale selecting on the device reads nothing inside a step, and its recalls are replayed afterwards', () => {
    const { reads, recalls } = readsInsideSteps('arkvale', 'device');
    expect(reads).toBe(0);
    expect(recalls).toBeGreaterThan(0);
  });

  it('quest selecting on the device (selectAttend) reads nothing inside a step', () => {
    const { reads } = readsInsideSteps('quest', 'device');
    expect(reads).toBe(0);
  });

  it.each(['h2o', 'tova'] as const)('%s deciding on the host reads every sequence’s token scores of a layer with one host synchronisation', (policy) => {
    const { reads, evictedTokens } = readsInsideSteps(policy, 'host');
    expect(reads).toBe(12 * (geometry.numLayers - 1));
    // A cell is freed in every budgeted layer of every sequence at every step (the prompts are over the budget).
    expect(evictedTokens).toBe(12 * 3 * (geometry.numLayers - 1));
  });

  it.each(['h2o', 'tova'] as const)(
    '%s evicting on the device (evictTokenCells) reads nothing inside a step, and its victims are replayed afterwards',
    (policy) => {
      const { reads, evictedTokens } = readsInsideSteps(policy, 'device');
      expect(reads).toBe(0);
      expect(evictedTokens).toBe(12 * 3 * (geometry.numLayers - 1));
    },
  );
});

describe('graphKey', () => {
  it('is null when a page starts or fills in a sequence or a row is out of sync, the same within a page, and another cache’s own', () => {
    const options = { policy: 'arkvale', budgetTokens: 16, sinkPages: 1, windowPages: 1, fullLayers: 1, devicePages: 256, hostPages: 256 } as const;
    const h = new CacheHarness(geometry, options, 7);
    const other = new CacheHarness(geometry, options, 7);
    // Pages of 4: lengths 41 and 53 start no page (41 % 4 = 1, 53 % 4 = 1) and fill none ((41 + 1) % 4 = 2).
    const ids = [41, 53].map((n) => h.admit(n));
    // The first step uploads every device table row whole: its work is not the next step's.
    expect(h.cache.graphKey(ids)).toBeNull();
    h.step(ids); // lengths 42 and 54
    const first = h.cache.graphKey(ids);
    expect(first).not.toBeNull();
    h.step(ids); // 43 and 55: the next token fills each sequence's last page
    expect(h.cache.graphKey(ids)).toBeNull();
    h.step(ids); // 44 and 56: the next token starts a page
    expect(h.cache.graphKey(ids)).toBeNull();
    h.step(ids); // 45 and 57: a page further on
    const later = h.cache.graphKey(ids);
    expect(later).not.toBeNull();
    expect(later).not.toBe(first);
    h.step(ids); // 46 and 58: the same pages
    expect(h.cache.graphKey(ids)).toBe(later);
    // A change outside decode steps (another sequence admitted) gives new keys: pages may have moved.
    h.admit(9);
    expect(h.cache.graphKey(ids)).not.toBe(later);
    // The other cache's sequences of the same ids and lengths run on other pools.
    const otherIds = [41, 53].map((n) => other.admit(n));
    expect(otherIds).toEqual(ids);
    other.step(otherIds);
    expect(other.cache.graphKey(otherIds)).not.toBeNull();
    expect(other.cache.graphKey(otherIds)).not.toBe(first);
  });
});
