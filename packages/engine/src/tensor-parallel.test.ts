import { CpuBackend } from '@arkvale/cpu-backend';
import { LlamaEngine, type RankedKvCache, type ModelForward } from '@arkvale/model-llama';
import { describe, expect, it } from 'vitest';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { generateBatch } from './generate-batch.js';
import { LocalEngine } from './local-engine.js';
import type { PlanCaches } from './plan-caches.js';
import { RankWorkers } from './ranks/rank-workers.js';
import { MODEL_DIR } from './test-support/model.js';
import type { EngineRequest } from './types.js';

/*
 * Tensor parallelism through the engine (docs/DESIGN.md, "Tensor parallelism"): the
 * bundled model (4 query heads over 2 KV heads) split over 2 ranks, and over 4, where
 * each KV head is replicated on two ranks. Its ranks share one CPU backend.
 */

const cpu = new CpuBackend();
const passkey = golden.cases.find((c) => c.name === 'passkey_1024')!;

async function tokens(engine: LocalEngine, req: EngineRequest): Promise<number[]> {
  const ids: number[] = [];
  for await (const ev of engine.submit({ temperature: 0, ignoreEos: true, ...req })) if (ev.type === 'token') ids.push(ev.tokenId);
  return ids;
}

describe('tensor parallelism in the engine', async () => {
  const one = await LlamaEngine.load(MODEL_DIR, cpu);
  const split = new Map<number, LlamaEngine<ModelForward>>();
  for (const size of [2, 4]) split.set(size, await LlamaEngine.loadTensorParallel(MODEL_DIR, Array(size).fill(cpu)));

  const request = { promptIds: passkey.ids, maxTokens: passkey.greedy.length, ignoreEos: true };

  it("generateBatch at sizes 2 and 4 under Full: transformers' greedy tokens", () => {
    for (const [size, engine] of split) {
      expect(generateBatch(engine, [request], { policy: 'full', pageSize: 16 }).outputs[0].tokenIds, `size ${size}`).toEqual(passkey.greedy);
    }
  }, 30_000);

  it("generateBatch at sizes 2 and 4 under ArkVale while it evicts and recalls: size 1's tokens", () => {
    const arkvale = { policy: 'arkvale' as const, pageSize: 16, budgetTokens: 128 };
    const alone = generateBatch(one, [request], arkvale).outputs[0].tokenIds;
    for (const [size, engine] of split) {
      const r = generateBatch(engine, [request], arkvale);
      expect(r.outputs[0].tokenIds, `size ${size}`).toEqual(alone);
      // Each rank selects for its own KV heads: rank 0 evicts and recalls its own pages.
      expect(r.kv.evictions).toBeGreaterThan(0);
      expect(r.kv.recalls).toBeGreaterThan(0);
    }
  }, 30_000);

  it("a served engine at size 2, its rank 1 in a thread: one rank's tokens, two plans at once in chunks, and every rank frees every page", async () => {
    const options = {
      modelDir: MODEL_DIR,
      backend: cpu,
      pageSize: 16,
      budgetTokens: 128,
      chunkTokens: 64,
      devicePages: 300,
      hostPages: 600,
      prefixCache: false,
    };
    const requests: EngineRequest[] = [
      { prompt: passkey.ids.slice(0, 400), maxTokens: 8 },
      { prompt: passkey.ids.slice(300, 700), maxTokens: 8, kvPolicy: 'full' },
    ];
    const alone = await LocalEngine.load(options);
    const expected = await Promise.all(requests.map((r) => tokens(alone, r)));
    await alone.close();
    const engine = await LocalEngine.load({ ...options, tensorParallel: 2 });
    expect(engine.model.backend).toBe('cpu, tensor-parallel 2');
    expect(await Promise.all(requests.map((r) => tokens(engine, r)))).toEqual(expected);
    // The core's caches and forward pass are private: the test reads every rank's pools.
    const core = engine.core as unknown as { caches: PlanCaches; forward: RankWorkers };
    expect(core.forward).toBeInstanceOf(RankWorkers);
    const caches = core.caches.all();
    expect(caches).toHaveLength(2);
    for (const cache of caches) {
      const [rank0] = (cache as RankedKvCache).ranks;
      expect([rank0.sequenceIds, rank0.store.devicePool.used, rank0.store.hostPool.used]).toEqual([[], 0, 0]);
    }
    expect(await core.forward.usage()).toEqual([{ devicePages: 0, hostPages: 0, sequences: 0 }]);
    await engine.close();
  }, 30_000);

  it('plans pools on every KV head the ranks store: the 2 KV heads once at size 2, replicated to 4 at size 4', () => {
    expect([one, ...split.values()].map((e) => e.geometry(16).numKvHeads)).toEqual([2, 2, 4]);
  });

  it('refuses a size the heads do not divide, or one that is not a positive integer, before it loads', async () => {
    await expect(LocalEngine.load({ modelDir: MODEL_DIR, backend: cpu, tensorParallel: 3 })).rejects.toThrow(/tensor-parallel size 3.*query heads/);
    await expect(LocalEngine.load({ modelDir: MODEL_DIR, backend: cpu, tensorParallel: 0 })).rejects.toThrow(
      /tensorParallel must be a positive integer, got 0/,
    );
  });
});
