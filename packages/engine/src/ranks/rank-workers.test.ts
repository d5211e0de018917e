import { CpuBackend } from '@arkvale/cpu-backend';
import type { Tensor } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { LlamaEngine } from '@arkvale/model-llama';
import golden from '../../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { generateBatch } from '../generate-batch.js';
import { LocalEngine } from '../local-engine.js';
import { MODEL_DIR } from '../test-support/model.js';
import type { EngineRequest } from '../types.js';
import { RankWorkers } from './rank-workers.js';

/*
 * Ranks in worker threads (RankWorkers), beyond the engine's tensor-parallel tests:
 * four ranks (each of the bundled model's 2 KV heads on two of them) against the same
 * ranks in one thread, bit for bit; ranks that make random weights; a worker that fails.
 */

const cpu = new CpuBackend();

async function tokens(engine: LocalEngine, req: EngineRequest): Promise<number[]> {
  const ids: number[] = [];
  for await (const ev of engine.submit({ temperature: 0, ignoreEos: true, ...req })) if (ev.type === 'token') ids.push(ev.tokenId);
  return ids;
}

describe('RankWorkers', () => {
  it('four ranks in threads sample exactly what the same four ranks in one thread sample', async () => {
    // Sampled tokens follow the whole distribution: any difference in the logits shows.
    const promptIds = golden.cases[1].ids.slice(0, 300);
    const plan = { policy: 'arkvale' as const, pageSize: 16, budgetTokens: 64 };
    const oneThread = await LlamaEngine.loadTensorParallel(MODEL_DIR, [cpu, cpu, cpu, cpu]);
    const expected = generateBatch(oneThread, [{ promptIds, maxTokens: 8, temperature: 1, seed: 3 }], plan).outputs[0].tokenIds;
    oneThread.forward.dispose();
    expect(new Set(expected).size).toBeGreaterThan(4);
    const threads = await LocalEngine.load({
      modelDir: MODEL_DIR,
      backend: cpu,
      tensorParallel: 4,
      prefill: 'one-shot',
      devicePages: 256,
      hostPages: 256,
      ...plan,
    });
    expect(await tokens(threads, { prompt: promptIds, maxTokens: 8, temperature: 1, seed: 3 })).toEqual(expected);
    await threads.close();
  }, 30_000);

  it('ranks in threads at a random-weight shape make their own share of the weights', async () => {
    const request = { prompt: Array.from({ length: 40 }, (_, i) => (i * 37) % 800), maxTokens: 4 };
    const options = { shape: 'tiny-retrieval', backend: cpu, pageSize: 16, devicePages: 128, hostPages: 128 };
    const alone = await LocalEngine.load(options);
    const expected = await tokens(alone, request);
    await alone.close();
    const two = await LocalEngine.load({ ...options, tensorParallel: 2 });
    expect(await tokens(two, request)).toEqual(expected);
    await two.close();
  }, 30_000);

  it('a worker that fails ends the pass under way and every later one, naming the rank and the cause', async () => {
    const ranks = await RankWorkers.start({ modelDir: MODEL_DIR }, 2, cpu);
    try {
      const cache = ranks.createPlanCache({ pageSize: 16 }, { policy: 'full', devicePages: 16, hostPages: 0 }, false);
      const id = cache.admit(4);
      const tokensIn = [1, 5, 9, 2];
      // Rank 1 is told to attend through a cache it never made.
      const pass = () =>
        ranks.forwardRows({
          segments: [
            {
              tokens: tokensIn,
              positions: [0, 1, 2, 3],
              attend: (l: number, q: Tensor, k: Tensor, v: Tensor) => cache.prefillLayer(id, l, q, k, v, ranks.scale),
              ref: { cache: 99, kind: 'prefill', seq: id },
            },
          ],
          logitRows: [3],
        });
      expect(pass).toThrow(/tensor-parallel rank 1 failed; rank 0 stops waiting for it at a collective/);
      // The worker's report arrives between turns of the event loop.
      await new Promise((r) => setTimeout(r, 100));
      expect(pass).toThrow(/tensor-parallel rank 1: no cache 99/);
    } finally {
      ranks.dispose();
    }
  });
});
