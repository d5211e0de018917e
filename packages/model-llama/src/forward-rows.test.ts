import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@arkvale/cpu-backend';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { LlamaEngine } from './engine.js';
import { TINY_MODEL_DIR } from './test-support/fixtures.js';

describe('forwardRows', async () => {
  const engine = await LlamaEngine.load(TINY_MODEL_DIR, new CpuBackend());
  const { forward, backend } = engine;
  const ids = golden.cases[0].ids.slice(0, 24);
  const plan = { policy: 'full' as const, pageSize: 8 };
  const read = (t: Parameters<typeof backend.readSync>[0]) => Array.from(backend.readSync(t));

  it('a prefill chunk and a decode step of two caches in one pass equal the same work done apart', () => {
    // Apart: a prefill of `ids` in one cache, a decode step of another sequence in a second.
    const cacheA = engine.createCache(plan, 64, 2);
    const a = cacheA.admit(ids.length);
    const prefill = read(forward.prefill(cacheA, [{ id: a, tokens: ids }]));
    const cacheB = engine.createCache(plan, 64, 2);
    const b = cacheB.admit(5);
    forward.prefill(cacheB, [{ id: b, tokens: ids.slice(0, 5) }]);
    const decode = read(forward.decode(cacheB, [b], [ids[5]]));

    // Together: the same prompt as one chunk, and the same decode step, with their own blocks.
    const cacheC = engine.createCache(plan, 64, 2);
    const cacheD = engine.createCache(plan, 64, 2);
    const c = cacheC.admitChunked(ids.length);
    const d = cacheD.admit(5);
    forward.prefill(cacheD, [{ id: d, tokens: ids.slice(0, 5) }]);
    const chunk = cacheC.beginPrefillChunk(c, ids.length);
    const step = cacheD.beginStep([d]);
    const logits = forward.forwardRows({
      segments: [
        { tokens: ids, positions: ids.map((_, i) => i), attend: (l, q, k, v) => cacheC.prefillChunkLayer(chunk, l, q, k, v, forward.scale) },
        { tokens: [ids[5]], positions: step.positions, attend: (l, q, k, v) => cacheD.decodeLayer(step, l, q, k, v, forward.scale) },
      ],
      blocks: [ids.length, 1],
      logitRows: [ids.length - 1, ids.length],
      logitBlock: 1,
    });
    const both = read(logits);
    const vocab = both.length / 2;
    // The decode row meets exactly the kernels it meets alone; the chunk's attention is paged, not causal.
    expect(both.slice(vocab)).toEqual(decode);
    const worst = prefill.reduce((m, x, i) => Math.max(m, Math.abs(x - both[i])), 0);
    expect(worst).toBeLessThan(1e-3);
    expect(cacheC.promptRemaining(c)).toBe(0);
    for (const [cache, id] of [[cacheA, a], [cacheB, b], [cacheC, c], [cacheD, d]] as const) cache.free(id);
  });

  it('refuses blocks that do not partition the rows', () => {
    const seg = { tokens: [1, 2], positions: [0, 1], attend: () => { throw new Error('not reached'); } };
    expect(() => forward.forwardRows({ segments: [seg], blocks: [1], logitRows: [1] })).toThrow(/partition/);
  });
});
