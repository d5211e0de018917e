import { describe, expect, it } from 'vitest';
import { BatchRun } from './generate-batch.js';
import { idleCudaModel } from './test-support/idle-cuda.js';

/**
 * Decode steps replayed without their forward pass (StepGraphs' direct replays) must
 * leave the host exactly where replays checked call by call leave it. The CUDA backend
 * runs here over an addon that does nothing (reads give zeros, so every step samples
 * token 0, no page is recalled and H2O's victim is cell 0): the same batch, with
 * sequences of different lengths that end at different steps (frees, new graph keys),
 * is stepped both ways for every policy that decides on the device (and Full), and
 * after every step the caches' pages, lengths and statistics must agree.
 */
function run(policy: 'arkvale' | 'quest' | 'h2o' | 'full', directReplay: boolean) {
  const { backend, config, cache, model, dispose } = idleCudaModel({
    shape: 'tiny-retrieval',
    policy,
    budgetTokens: 64,
    pageSize: 16,
    tokens: 300,
    batch: 3,
    directReplay,
  });
  const prompt = (n: number) => Array.from({ length: n }, (_, i) => (i * 7) % config.vocabSize);
  const batch = new BatchRun(model, cache, [
    { promptIds: prompt(101), maxTokens: 60, ignoreEos: true },
    { promptIds: prompt(130), maxTokens: 37, ignoreEos: true },
    { promptIds: prompt(77), maxTokens: 49, ignoreEos: true },
  ]);
  const states: string[] = [];
  while (!batch.done) {
    batch.step();
    const sequences = [...cache.rawSequences.values()].map((s) => ({
      id: s.id,
      length: s.length,
      pages: s.layers.map((l) => (l.kind === 'page' ? l.pages.map((p) => [p.slot, p.digest, p.host]) : null)),
    }));
    states.push(JSON.stringify({ sequences, stats: cache.stats() }));
  }
  batch.close();
  dispose();
  const stats = backend.graphStats;
  backend.trimBuffers();
  return { states, stats, liveTensors: backend.liveTensors };
}

describe('decode steps replayed without their forward pass', () => {
  it.each(['arkvale', 'quest', 'h2o', 'full'] as const)(
    'leave the caches as replays checked call by call do, step by step, and nothing behind (%s)',
    (policy) => {
      const direct = run(policy, true);
      const checked = run(policy, false);
      expect(direct.states.length).toBe(checked.states.length);
      direct.states.forEach((state, i) => expect(state, `after step ${i}`).toBe(checked.states[i]));
      // Most replays skipped the forward pass; none did with direct replays off.
      expect(direct.stats.direct).toBeGreaterThan(direct.stats.replayed / 2);
      expect(checked.stats.direct).toBe(0);
      expect(checked.stats.replayed).toBe(direct.stats.replayed);
      expect(direct.stats.fallbacks).toBe(0);
      expect(direct.liveTensors).toBe(0);
      expect(checked.liveTensors).toBe(0);
    },
  );
});
