import { describe, expect, it } from 'vitest';
import { KvCache } from '../manager/kv-cache.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { denseAttention } from '../test-support/dense-attention.js';

describe('Quest (hand-worked)', () => {
  it('chooses pages per query head and keeps every page resident', () => {
    const backend = new ReferenceBackend();
    // Two query heads share one KV head; pages of 2 tokens; budget 2 pages per head.
    const cache = new KvCache({
      geometry: { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2, pageSize: 2, bytesPerElement: 4 },
      options: { policy: 'quest', budgetTokens: 4, sinkPages: 0, windowPages: 1, fullLayers: 0, devicePages: 16 },
      backend,
    });
    const keys = [[4, 0], [4, 0], [0, 4], [0, 4], [1, 1], [1, 1], [0, 0]];
    const values = keys.map((_, t) => [t, 10 * t]);
    const id = cache.admit(7);
    cache.prefillLayer(
      id, 0,
      backend.fromArray(new Array(7 * 2 * 2).fill(0), [7, 2, 2]),
      backend.fromArray(keys.flat(), [7, 1, 2]),
      backend.fromArray(values.flat(), [7, 1, 2]),
      1,
    );
    const step = cache.beginStep([id]);
    // Head 0 looks along x (page 0 wins), head 1 along y (page 1 wins); both also see the last page.
    const q = [1, 0, 0, 1];
    const out = Array.from(backend.readSync(cache.decodeLayer(step, 0, backend.fromArray(q, [1, 2, 2]), backend.fromArray([0, 0], [1, 1, 2]), backend.fromArray([9, 9], [1, 1, 2]), 1)));
    const view = cache.view(id, 0);
    expect(view.kind === 'page' && view.resident).toEqual([0, 1, 2, 3]);
    const lastPage = { k: [keys[6], [0, 0]], v: [values[6], [9, 9]] };
    const head0 = denseAttention([1, 0], [keys[0], keys[1], ...lastPage.k], [values[0], values[1], ...lastPage.v], 1);
    const head1 = denseAttention([0, 1], [keys[2], keys[3], ...lastPage.k], [values[2], values[3], ...lastPage.v], 1);
    [...head0, ...head1].forEach((x, i) => expect(out[i]).toBeCloseTo(x, 4));
    expect(cache.stats().recalls + cache.stats().evictions).toBe(0);
  });
});
