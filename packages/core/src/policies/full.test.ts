import { describe, expect, it } from 'vitest';
import { KvCache } from '../manager/kv-cache.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { randomArray, rng } from '../test-support/random.js';

describe('Full policy', () => {
  it('decodes exactly like causal attention over the whole sequence', () => {
    const backend = new ReferenceBackend();
    const g = { numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };
    const cache = new KvCache({ geometry: g, options: { policy: 'full', devicePages: 32 }, backend });
    const next = rng(3);
    const n = 13;
    const q = randomArray(next, (n + 1) * 4 * 8);
    const k = randomArray(next, (n + 1) * 2 * 8);
    const v = randomArray(next, (n + 1) * 2 * 8);
    const id = cache.admit(n);
    cache.prefillLayer(
      id,
      0,
      backend.fromArray(q.subarray(0, n * 32), [n, 4, 8]),
      backend.fromArray(k.subarray(0, n * 16), [n, 2, 8]),
      backend.fromArray(v.subarray(0, n * 16), [n, 2, 8]),
      0.3,
    );
    const step = cache.beginStep([id]);
    const out = backend.readSync(
      cache.decodeLayer(
        step,
        0,
        backend.fromArray(q.subarray(n * 32), [1, 4, 8]),
        backend.fromArray(k.subarray(n * 16), [1, 2, 8]),
        backend.fromArray(v.subarray(n * 16), [1, 2, 8]),
        0.3,
      ),
    );
    const dense = backend.causalAttention({
      q: backend.fromArray(q, [n + 1, 4, 8]),
      k: backend.fromArray(k, [n + 1, 2, 8]),
      v: backend.fromArray(v, [n + 1, 2, 8]),
      scale: 0.3,
    });
    const last = backend.readSync(dense.out).subarray(n * 32);
    Array.from(out).forEach((x, i) => expect(x).toBeCloseTo(last[i], 5));
  });
});
