import { describe, expect, it } from 'vitest';
import type { KvGeometry } from '../config.js';
import { CacheHarness } from '../test-support/harness.js';

const geometry: KvGeometry = { numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };
const PROMPT = 201; // 51 pages, the last one partial
const BUDGET_PAGES = 4;

function harness(devicePages: number, fullLayers: number): CacheHarness {
  return new CacheHarness(geometry, { policy: 'arkvale', budgetTokens: BUDGET_PAGES * geometry.pageSize, fullLayers, devicePages, hostPages: 400 }, 5);
}

/** The most device pages in use while any layer attends its prompt (after that layer's pages are written, before it evicts). */
function peakDuringPrefill(h: CacheHarness): () => number {
  let peak = 0;
  const attend = h.backend.causalAttention.bind(h.backend);
  h.backend.causalAttention = (args) => {
    peak = Math.max(peak, h.cache.stats().device.used);
    return attend(args);
  };
  return () => peak;
}

/**
 * A one-shot prefill holds at most one layer's pages beyond the budget on the device at a
 * time (issue 22's bounded prefill): each budgeted layer writes the whole prompt, keeps
 * its budget and gives the rest back before the next layer writes its own.
 */
describe('a one-shot prefill beyond the budget', () => {
  for (const fullLayers of [0, 1]) {
    it(`holds its kept pages plus one layer's overflow at a time (${fullLayers} unbudgeted layer(s))`, () => {
      const pages = Math.ceil(PROMPT / geometry.pageSize);
      const kept = fullLayers * pages + (geometry.numLayers - fullLayers) * BUDGET_PAGES;
      const peakPages = kept + (pages - BUDGET_PAGES);
      const probe = harness(1000, fullLayers);
      expect(probe.cache.prefillPeak(PROMPT).device).toBe(peakPages);

      // A device pool of exactly that many pages takes the prompt, and the peak is reached.
      const h = harness(peakPages, fullLayers);
      const peak = peakDuringPrefill(h);
      const id = h.admit(PROMPT);
      expect(peak()).toBe(peakPages);
      expect(h.cache.stats().device.used).toBe(kept);
      h.checkData();
      h.free(id);
      expect(h.cache.stats().device.used).toBe(0);

      // One page fewer is refused up front, with the numbers, and nothing is held.
      const short = harness(peakPages - 1, fullLayers);
      expect(() => short.admit(PROMPT)).toThrow(/device page pool exhausted: \d+ page\(s\) requested/);
      expect(short.cache.stats().device.used).toBe(0);
    });
  }
});
