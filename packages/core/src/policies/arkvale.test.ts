import { describe, expect, it } from 'vitest';
import { KvCache } from '../manager/kv-cache.js';
import { checkConsistency } from '../manager/consistency.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { denseAttention } from '../test-support/dense-attention.js';
import { arkvalePolicy } from './arkvale.js';

/**
 * One layer, one head, head dim 2, pages of 2 tokens, a budget of 4 pages with one
 * sink and a one-page window: two middle slots, top-1 selection.
 */
function setup() {
  const backend = new ReferenceBackend();
  const cache = new KvCache({
    geometry: { numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 2, pageSize: 2, bytesPerElement: 4 },
    options: { policy: 'arkvale', budgetTokens: 8, sinkPages: 1, windowPages: 1, fullLayers: 0, devicePages: 16, hostPages: 16 },
    backend,
  });
  return { backend, cache };
}

// Keys per page (both tokens alike): p1 points along x, p2 along y, p3 against both.
const promptKeys = [
  [0, 0],
  [0, 0], // p0 sink
  [5, 0],
  [5, 0], // p1
  [0, 5],
  [0, 5], // p2
  [-5, -5],
  [-5, -5], // p3
  [0, 0],
  [0, 0], // p4 window
];
const promptValues = promptKeys.map((_, t) => [t, -t]);

describe('ArkVale policy (hand-worked)', () => {
  it('evicts at prefill, evicts the page leaving the window, and recalls pages whose score returns', () => {
    const { backend, cache } = setup();
    const id = cache.admit(10);
    const qPrompt = promptKeys.map((_, t) => (t === 9 ? [1, 0] : [0, 0]));
    cache.prefillLayer(
      id,
      0,
      backend.fromArray(qPrompt.flat(), [10, 1, 2]),
      backend.fromArray(promptKeys.flat(), [10, 1, 2]),
      backend.fromArray(promptValues.flat(), [10, 1, 2]),
      1,
    );
    // Last prompt query [1, 0] scores p1 5, p2 0, p3 -5: p3 is evicted, still backed up.
    let view = cache.view(id, 0);
    expect(view.kind === 'page' && view.resident).toEqual([0, 1, 2, 4]);
    // Backups of resident pages stay pending until an eviction needs them complete.
    expect(view.kind === 'page' && view.backups).toEqual(['pending', 'pending', 'pending', 'complete', 'pending']);

    // Token 10 starts page p5: at budget, p4 leaves the window and gives up its slot.
    // The query [-1, -1] scores p3 10, p4 0, p1 -5, p2 -5: p3 comes back in place of p1.
    const step = cache.beginStep([id]);
    view = cache.view(id, 0);
    expect(view.kind === 'page' && view.resident).toEqual([0, 1, 2, 5]);
    const out = cache.decodeLayer(
      step,
      0,
      backend.fromArray([-1, -1], [1, 1, 2]),
      backend.fromArray([0, 0], [1, 1, 2]),
      backend.fromArray([7, 7], [1, 1, 2]),
      1,
    );
    view = cache.view(id, 0);
    expect(view.kind === 'page' && view.resident).toEqual([0, 2, 3, 5]);
    expect(cache.stats().recalls).toBe(1);

    // Attention ran over exactly the resident tokens: pages 0, 2, 3 and the new token.
    const tokens = [0, 1, 4, 5, 6, 7];
    const expected = denseAttention([-1, -1], [...tokens.map((t) => promptKeys[t]), [0, 0]], [...tokens.map((t) => promptValues[t]), [7, 7]], 1);
    const got = Array.from(backend.readSync(out));
    got.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));

    // The query turns back to x: p1 (evicted a step ago) returns in place of p3.
    const step2 = cache.beginStep([id]);
    cache.decodeLayer(step2, 0, backend.fromArray([1, 0], [1, 1, 2]), backend.fromArray([0, 0], [1, 1, 2]), backend.fromArray([8, 8], [1, 1, 2]), 1);
    view = cache.view(id, 0);
    expect(view.kind === 'page' && view.resident).toEqual([0, 1, 2, 5]);
    expect(cache.stats().recalls).toBe(2);
    checkConsistency(cache);
    cache.free(id);
    expect(cache.store.devicePool.used + cache.store.hostPool.used + cache.store.digestPool.used).toBe(0);
  });

  it('picks one page set per KV-head group when selection is per group', () => {
    const policy = arkvalePolicy('cuboid-mean', 'kv-head');
    expect(policy.selectionGroups(8, 2)).toBe(2);
    const d = policy.decide({
      numPages: 8,
      resident: [true, true, true, false, false, false, true, true],
      budgetPages: 5,
      sinkPages: 1,
      windowPages: 2,
      topK: 1,
      groups: 2,
      candidates: [1, 2, 3, 4, 5],
      // group 0 wants page 3, group 1 wants page 5; page 1 scores lowest overall, then page 2.
      scores: [0, 1, 9, 2, 3, /* group 1 */ 0.5, 0, 2, 3, 9],
    });
    expect(d.recalls).toEqual([
      { page: 3, victim: 1 },
      { page: 5, victim: 2 },
    ]);
    expect(d.evictions).toEqual([1, 2]);
    expect(d.attend).toEqual([[0, 3, 5, 6, 7]]);
  });

  it('does nothing while the sequence fits the budget', () => {
    const d = arkvalePolicy().decide({
      numPages: 3,
      resident: [true, true, true],
      budgetPages: 4,
      sinkPages: 1,
      windowPages: 1,
      topK: 1,
      groups: 1,
      candidates: [],
      scores: [],
    });
    expect(d).toEqual({ attend: [[0, 1, 2]], recalls: [], evictions: [] });
  });
});
