import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@arkvale/cpu-backend';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { LlamaEngine } from './engine.js';
import { LlamaForward, mlpChunks } from './forward.js';
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
    for (const [cache, id] of [
      [cacheA, a],
      [cacheB, b],
      [cacheC, c],
      [cacheD, d],
    ] as const)
      cache.free(id);
  });

  it('runs the MLP of a long pass in chunks, with the logits of the whole pass', () => {
    const limit = 5;
    const mlpRows: number[] = [];
    const qRows: number[] = [];
    const { config, weights } = forward;
    // The same backend, recording the rows of every product with the MLP's and q's weights.
    const spy = Object.create(backend) as typeof backend;
    spy.matmul = (x, w, outDtype) => {
      if (w === weights.layers[0].gateUp || w === weights.layers[0].down) mlpRows.push(x.shape[0]);
      if (w === weights.layers[0].qkv) qRows.push(x.shape[0]);
      return backend.matmul(x, w, outDtype);
    };
    const chunked = new LlamaForward(config, weights, spy, forward.maxPositions, limit);
    const tokens = Array.from({ length: 23 }, (_, i) => ids[i % ids.length]);
    const logitsOf = (f: LlamaForward) => {
      const cache = engine.createCache(plan, 64, 2);
      const id = cache.admit(tokens.length);
      const out = read(f.prefill(cache, [{ id, tokens }]));
      cache.free(id);
      return out;
    };
    const whole = logitsOf(forward);
    const inChunks = logitsOf(chunked);
    // 23 rows: the stacked gate/up and the down products of 5, 5, 5, 5 and 3 rows in the first layer; the q/k/v product sees every row.
    expect(mlpRows).toEqual([5, 5, 5, 5, 3].flatMap((r) => [r, r]));
    expect(qRows).toEqual([23]);
    const worst = whole.reduce((m, x, i) => Math.max(m, Math.abs(x - inChunks[i])), 0);
    expect(worst).toBeLessThan(1e-3);
  });

  it('cuts MLP chunks from each block alone (batch invariance) and packs small blocks', () => {
    expect(mlpChunks([10000], 4096)).toEqual([[4096], [4096], [1808]]);
    expect(mlpChunks([3000, 1, 1, 2000], 4096)).toEqual([[3000, 1, 1], [2000]]);
    expect(mlpChunks([5, 6000, 3], 4096)).toEqual([[5], [4096], [1904], [3]]);
    expect(mlpChunks([4096, 4096], 4096)).toEqual([[4096], [4096]]);
    // Property: chunks keep order and rows, stay within the limit, and a large block's pieces do not depend on its neighbours.
    let seed = 1;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n) + 1;
    for (let run = 0; run < 200; run++) {
      const limit = rand(64);
      const blocks = Array.from({ length: rand(8) }, () => rand(3 * limit));
      const chunks = mlpChunks(blocks, limit);
      for (const chunk of chunks) expect(chunk.reduce((a, r) => a + r, 0)).toBeLessThanOrEqual(limit);
      const pieces = chunks.flat();
      let at = 0;
      for (const size of blocks) {
        const own = size > limit ? Array.from({ length: Math.ceil(size / limit) }, (_, i) => Math.min(limit, size - i * limit)) : [size];
        expect(pieces.slice(at, at + own.length)).toEqual(own);
        at += own.length;
      }
      expect(at).toBe(pieces.length);
    }
  });

  it('runs padded blocks at their padded shape and returns exactly the unpadded logits', () => {
    const shapes: number[] = [];
    const { config, weights } = forward;
    const spy = Object.create(backend) as typeof backend;
    spy.matmul = (x, w, outDtype) => {
      if (w === weights.layers[0].qkv || w === weights.layers[0].down || w === weights.lmHead) shapes.push(x.shape[0]);
      return backend.matmul(x, w, outDtype);
    };
    const toks = Array.from({ length: 24 }, (_, i) => ids[i % ids.length]);
    const padded = new LlamaForward(config, weights, spy, forward.maxPositions, 8);
    padded.reservePadding(12);
    // Three decode-like rows of three sequences at prompt length 5, then a 10-row chunk (cut by the MLP limit of 8, unpadded).
    const logitsOf = (f: LlamaForward, pads: boolean) => {
      const cache = engine.createCache(plan, 256, 2);
      const seqs = [0, 1, 2].map((s) => {
        const id = cache.admit(5);
        f.prefill(cache, [{ id, tokens: toks.slice(s, s + 5) }]);
        return id;
      });
      const chunked = cache.admitChunked(10);
      const chunk = cache.beginPrefillChunk(chunked, 10);
      const step = cache.beginStep(seqs);
      shapes.length = 0;
      const out = read(
        f.forwardRows({
          segments: [
            { tokens: [toks[5], toks[6], toks[7]], positions: step.positions, attend: (l, q, k, v) => cache.decodeLayer(step, l, q, k, v, f.scale) },
            {
              tokens: toks.slice(0, 10),
              positions: toks.slice(0, 10).map((_, i) => i),
              attend: (l, q, k, v) => cache.prefillChunkLayer(chunk, l, q, k, v, f.scale),
            },
          ],
          blocks: [2, 1, 10],
          logitRows: [0, 1, 2, 12],
          logitBlock: 2,
          ...(pads ? { padTo: [4, 4, 12], logitPad: 4 } : {}),
        }),
      );
      for (const id of [...seqs, chunked]) cache.free(id);
      return out;
    };
    const plain = logitsOf(padded, false);
    expect(shapes).toEqual([2, 1, 10, 2, 1, 8, 2, 2, 2]);
    const withPads = logitsOf(padded, true);
    // q/k/v: blocks of 2 and 1 padded to 4, the chunk to 12 (all below the CPU kernel switch at 16 rows, so the numbers are the same); down: the chunk cut to 8 + 2 runs unpadded; lm_head blocks of 2 padded to 4.
    expect(shapes).toEqual([4, 4, 12, 4, 4, 8, 2, 4, 4]);
    expect(withPads).toEqual(plain);
    expect(() => forward.forwardRows({ segments: [], blocks: [], logitRows: [], padTo: [] })).toThrow();
    const seg = { tokens: [1, 2], positions: [0, 1], attend: () => forward.backend.fromArray([], [0]) };
    expect(() => forward.forwardRows({ segments: [seg], blocks: [2], padTo: [4], logitRows: [1] })).toThrow(/reserved padding: 0 rows/);
  });

  it('refuses blocks that do not partition the rows', () => {
    const seg = {
      tokens: [1, 2],
      positions: [0, 1],
      attend: () => {
        throw new Error('not reached');
      },
    };
    expect(() => forward.forwardRows({ segments: [seg], blocks: [1], logitRows: [1] })).toThrow(/partition/);
  });
});
