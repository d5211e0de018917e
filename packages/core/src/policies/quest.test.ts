import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { questPolicy } from './quest.js';
import { KvCache } from '../manager/kv-cache.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { denseAttention } from '../test-support/dense-attention.js';

describe('Quest', () => {
  it('chooses pages per query head and keeps every page resident (hand-worked)', () => {
    const backend = new ReferenceBackend();
    // Two query heads share one KV head; pages of 2 tokens; budget 2 pages per head.
    const cache = new KvCache({
      geometry: { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2, pageSize: 2, bytesPerElement: 4 },
      options: { policy: 'quest', budgetTokens: 4, sinkPages: 0, windowPages: 1, fullLayers: 0, devicePages: 16 },
      backend,
    });
    const keys = [
      [4, 0],
      [4, 0],
      [0, 4],
      [0, 4],
      [1, 1],
      [1, 1],
      [0, 0],
    ];
    const values = keys.map((_, t) => [t, 10 * t]);
    const id = cache.admit(7);
    cache.prefillLayer(
      id,
      0,
      backend.fromArray(new Array(7 * 2 * 2).fill(0), [7, 2, 2]),
      backend.fromArray(keys.flat(), [7, 1, 2]),
      backend.fromArray(values.flat(), [7, 1, 2]),
      1,
    );
    const step = cache.beginStep([id]);
    // Head 0 looks along x (page 0 wins), head 1 along y (page 1 wins); both also see the last page.
    const q = [1, 0, 0, 1];
    const out = Array.from(
      backend.readSync(
        cache.decodeLayer(step, 0, backend.fromArray(q, [1, 2, 2]), backend.fromArray([0, 0], [1, 1, 2]), backend.fromArray([9, 9], [1, 1, 2]), 1),
      ),
    );
    const view = cache.view(id, 0);
    expect(view.kind === 'page' && view.resident).toEqual([0, 1, 2, 3]);
    const lastPage = { k: [keys[6], [0, 0]], v: [values[6], [9, 9]] };
    const head0 = denseAttention([1, 0], [keys[0], keys[1], ...lastPage.k], [values[0], values[1], ...lastPage.v], 1);
    const head1 = denseAttention([0, 1], [keys[2], keys[3], ...lastPage.k], [values[2], values[3], ...lastPage.v], 1);
    [...head0, ...head1].forEach((x, i) => expect(out[i]).toBeCloseTo(x, 4));
    expect(cache.stats().recalls + cache.stats().evictions).toBe(0);
  });

  it('decides per head what sorting the candidates by score (ties to the older page) decides', () => {
    const quest = questPolicy();
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 60 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 20 }),
        fc.nat(),
        (numPages, groups, budgetPages, seed) => {
          let x = seed || 1;
          // Few distinct values, so that ties are common.
          const next = () => ((x = (x * 48271) % 2147483647) % 5) - 2;
          const candidates = [...Array(numPages - 1).keys()];
          const scores = Float32Array.from({ length: groups * candidates.length }, next);
          const ctx = {
            numPages,
            resident: Array(numPages).fill(true),
            budgetPages,
            sinkPages: 0,
            windowPages: 1,
            topK: budgetPages,
            groups,
            candidates,
            scores,
          };
          const spec = [...Array(groups).keys()].map((g) => {
            if (numPages <= budgetPages) return [...Array(numPages).keys()];
            const order = [...candidates].sort((a, b) => scores[g * candidates.length + b] - scores[g * candidates.length + a] || a - b);
            return [...order.slice(0, budgetPages - 1), numPages - 1].sort((a, b) => a - b);
          });
          expect(quest.decide(ctx).attend).toEqual(spec);
        },
      ),
      { numRuns: 1000, seed: 14 },
    );
  });
});
