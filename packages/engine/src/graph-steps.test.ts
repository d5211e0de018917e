import { CpuBackend } from '@arkvale/cpu-backend';
import { type GraphedStep, runGraphedStep, type Tensor } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { LocalEngine } from './local-engine.js';
import type { EngineRequest } from './types.js';
import { MODEL_DIR } from './test-support/model.js';

/**
 * The CPU backend with a graphStep that only notes its keys (the CUDA backend replays
 * them), and counts as replayed, as the CUDA backend's graphStats do, a step whose key
 * repeats the one before, and the steps that could skip their forward pass.
 */
class KeyedBackend extends CpuBackend {
  readonly keys: string[] = [];
  readonly graphStats = { replayed: 0 };
  skippable = 0;
  graphStep<P>(key: string, step: GraphedStep<P>): Tensor {
    if (this.keys.at(-1) === key) this.graphStats.replayed++;
    if (step.skipped) this.skippable++;
    this.keys.push(key);
    return runGraphedStep(this, step);
  }
}

async function texts(engine: LocalEngine, reqs: readonly EngineRequest[]): Promise<string[]> {
  return Promise.all(
    reqs.map(async (req) => {
      let out = '';
      for await (const ev of engine.submit(req)) out += ev.text;
      return out;
    }),
  );
}

describe('decode steps as graph steps', () => {
  it('hands decode-only steps to graphStep under keys that repeat within a page, with the same text as without', async () => {
    const reqs: EngineRequest[] = [
      { prompt: 'The old farmer painted the barn and then the', maxTokens: 40, temperature: 0, ignoreEos: true },
      { prompt: 'Once upon a time in a small village there lived a', maxTokens: 40, temperature: 0, ignoreEos: true },
    ];
    const options = { modelDir: MODEL_DIR, pageSize: 8, policy: 'arkvale' as const, budgetTokens: 32 };
    const keyed = new KeyedBackend();
    const graphed = await LocalEngine.load({ ...options, backend: keyed });
    const plain = await LocalEngine.load(options);
    try {
      const [a, b] = [await texts(graphed, reqs), await texts(plain, reqs)];
      expect(a).toEqual(b);
      // Two sequences decoding together for 40 steps, pages of 8: a step has a key unless a
      // page starts or fills in either sequence, and it repeats until one does.
      expect(keyed.keys.length).toBeGreaterThan(10);
      const repeats = keyed.keys.filter((k, i) => i > 0 && keyed.keys[i - 1] === k).length;
      expect(repeats).toBeGreaterThan(5);
      expect(keyed.keys.every((k) => k.startsWith('blocks '))).toBe(true);
      // The engine's count of replayed decode steps (what /metrics reports) is the backend's.
      const stats = await graphed.stats();
      expect(stats.graphReplayedSteps).toBe(repeats);
      expect(stats.decodeSteps).toBeGreaterThanOrEqual(keyed.keys.length);
      expect((await plain.stats()).graphReplayedSteps).toBe(0);
      // ArkVale selecting on the device: once a key has run, its later steps may replay without their forward pass.
      expect(keyed.skippable).toBeGreaterThan(0);
    } finally {
      graphed.close();
      plain.close();
    }
  }, 60_000);
});
