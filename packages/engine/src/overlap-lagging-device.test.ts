import { describe, expect, it } from 'vitest';
import { BatchRun } from './generate-batch.js';
import { idleCudaModel } from './test-support/idle-cuda.js';

/**
 * An overlapped step gains on a GPU only if nothing in its issue waits for the step
 * before it (docs/DESIGN.md, "Overlapped decode steps"): not the token read, not the
 * recall plans, not the graph it replays. The CUDA backend runs here over an idle addon
 * whose device lags: nothing it is given is done until the host waits for it, so each
 * wait shows as work done, and where the host waited is where a GPU would have idled.
 */
interface StepTrace {
  readonly kind: 'replayed' | 'recorded' | 'eager';
  /** The step's first piece of work, counted from 1 in issue order. */
  readonly first: number;
  /** Work done when it was issued. */
  readonly doneAtFirst: number;
}

function run(policy: 'arkvale' | 'quest' | 'full' | 'h2o', overlapSteps: boolean) {
  const { backend, device, config, cache, model, dispose } = idleCudaModel({
    shape: 'tiny-retrieval',
    policy,
    budgetTokens: 64,
    pageSize: 16,
    tokens: 200,
    batch: 2,
    lagging: true,
  });
  const prompt = Array.from({ length: 101 }, (_, i) => (i * 7) % config.vocabSize);
  const batch = new BatchRun(
    model,
    cache,
    [0, 1].map(() => ({ promptIds: prompt, maxTokens: 60, ignoreEos: true })),
    { overlapSteps },
  );
  const steps: StepTrace[] = [];
  while (!batch.done) {
    const before = backend.graphStats;
    const first = device.issued + 1;
    batch.step();
    const after = backend.graphStats;
    const kind = after.replayed > before.replayed ? 'replayed' : after.recorded > before.recorded ? 'recorded' : 'eager';
    steps.push({ kind, first, doneAtFirst: device.doneWhenIssued(first) });
  }
  const outputs = batch.tokenIds.map((ids) => [...ids]);
  const stats = cache.stats();
  batch.close();
  dispose();
  backend.trimBuffers();
  return { steps, outputs, stats, graphs: backend.graphStats, liveTensors: backend.liveTensors };
}

describe('overlapped decode steps on a device that lags behind the host', () => {
  it.each(['arkvale', 'quest', 'full'] as const)(
    'issue each replayed step while the whole step before it still runs, and end where steps one by one do (%s)',
    (policy) => {
      const on = run(policy, true);
      const off = run(policy, false);
      // A replayed step after a replayed one: nothing of the step before was done when its first work went out.
      const steady = on.steps.filter((s, i) => i > 0 && s.kind === 'replayed' && on.steps[i - 1].kind === 'replayed');
      expect(steady.length).toBeGreaterThan(on.steps.length / 2);
      on.steps.forEach((s, i) => {
        if (steady.includes(s)) expect(s.doneAtFirst, `step ${i}`).toBeLessThan(on.steps[i - 1].first);
      });
      // One by one, every step starts on an idle device: the host read the last step's tokens.
      off.steps.slice(1).forEach((s, i) => expect(s.doneAtFirst, `step ${i + 1}`).toBe(s.first - 1));
      // The step after a key's record replays a second instance of its graph rather than record the key again. The
      // first decode step takes its tokens from the host (the prefill's were read), so the fed steps after it may
      // need one record more.
      expect(on.graphs.recorded).toBeLessThanOrEqual(off.graphs.recorded + 1);
      expect(on.graphs.instances).toBeGreaterThan(0);
      expect(off.graphs.instances).toBe(0);
      expect(on.outputs).toEqual(off.outputs);
      expect(on.stats).toEqual(off.stats);
      expect(on.liveTensors).toBe(0);
      expect(off.liveTensors).toBe(0);
    },
  );

  it('need no second instance of a graph for a token policy, whose step waits for the victims of the one before', () => {
    const on = run('h2o', true);
    const off = run('h2o', false);
    // H2O places each token in the cell its last victim freed, so the host reads those victims first: the
    // replayed step's graph is then idle.
    const steady = on.steps.filter((s, i) => i > 0 && s.kind === 'replayed' && on.steps[i - 1].kind === 'replayed');
    expect(steady.length).toBeGreaterThan(on.steps.length / 2);
    expect(on.graphs.instances).toBe(0);
    expect(on.outputs).toEqual(off.outputs);
    expect(on.stats).toEqual(off.stats);
  });
});
