import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CacheOptions, KvGeometry } from '../config.js';
import { commandArbitrary } from '../test-support/commands.js';
import { CacheHarness } from '../test-support/harness.js';
import type { DecodeStep, KvCache } from './kv-cache.js';
import type { SequenceState } from './layer-state.js';

const command = commandArbitrary({ maxPrompt: 40, maxTimes: 10 });

const scenario = fc.record({
  policy: fc.constantFrom('arkvale' as const, 'quest' as const, 'h2o' as const, 'tova' as const, 'full' as const, 'streaming-llm' as const),
  selectOn: fc.constantFrom('device' as const, 'device' as const, 'host' as const),
  // Pages of 8: a step under a graph key needs a page that neither starts nor fills, and the one before it under the same key.
  pageSize: fc.constantFrom(4, 8),
  budgetPages: fc.integer({ min: 3, max: 6 }),
  fullLayers: fc.integer({ min: 0, max: 1 }),
  seed: fc.integer(),
  commands: fc.array(command, { minLength: 1, maxLength: 14 }),
});

/**
 * Everything a decode step's forward pass could change on the host: every sequence's
 * layers (pages, cells, device rows and whether they are in sync), the pools, the
 * device tables. Read without settling (which would replay the step's own decisions).
 */
function hostState(cache: KvCache): string {
  const sequences = (cache as unknown as { sequences: Map<number, SequenceState> }).sequences;
  const store = cache.store;
  return JSON.stringify(
    {
      sequences: [...sequences.values()],
      pools: [store.devicePool, store.hostPool, store.digestPool].map((p) => p.available),
      tables: [store.deviceTables.version, store.deviceTables.queued],
      backup: store.lastBackup,
    },
    (key, value) => (key === 'policy' ? undefined : ArrayBuffer.isView(value) ? Array.from(value as Int32Array) : value),
  );
}

/**
 * A decode step replayed as a graph without its forward pass (KvCache.canSkipForward,
 * skipStep) is only right if that forward pass changes nothing on the host but the
 * decision rows it gathers, and gathers what the last step under its key did. Over
 * random runs of every policy, each step the cache says may skip its forward pass runs
 * it anyway, and the host's state after it must equal the state before it, and the rows
 * it gathered those that `skipStep` would gather.
 */
describe('decode steps that may skip their forward pass', () => {
  it('change nothing on the host in their forward pass but what skipStep gathers again', () => {
    const skippable: Record<string, number> = {};
    fc.assert(
      fc.property(scenario, (s) => {
        const geometry: KvGeometry = { numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 4, pageSize: s.pageSize, bytesPerElement: 4 };
        const options: CacheOptions = {
          policy: s.policy,
          budgetTokens: s.budgetPages * s.pageSize,
          // Token-level policies count sinks in tokens: one page of them would leave no room in the smallest budgets.
          sinkPages: s.policy === 'h2o' || s.policy === 'tova' || s.policy === 'streaming-llm' ? 0 : 1,
          windowPages: 1,
          fullLayers: s.fullLayers,
          devicePages: 400,
          hostPages: 800,
          selectOn: s.selectOn,
        };
        const h = new CacheHarness(geometry, options, s.seed);
        const live = () => h.cache.sequenceIds;
        const gathered = (step: DecodeStep) => (h.cache as unknown as { gatheredByKey: Map<string, unknown> }).gatheredByKey.get(step.key!);
        for (const c of s.commands) {
          if (c.op === 'admit') h.admit(c.length);
          else if (live().length === 0) continue;
          else if (c.op === 'step') {
            const ids = [...new Set(c.pick.map((i) => live()[i % live().length]))];
            for (let i = 0; i < c.times; i++) {
              const may = h.cache.canSkipForward(ids);
              let before = '';
              let recorded: unknown;
              h.step(ids, {
                begun: (step) => {
                  before = hostState(h.cache);
                  recorded = gathered(step);
                },
                ended: (step) => {
                  if (!may) return;
                  skippable[s.policy] = (skippable[s.policy] ?? 0) + 1;
                  expect(step.key).not.toBeNull();
                  expect(hostState(h.cache)).toBe(before);
                  // What the forward pass gathered is what the record's did: the same layers, the same rows.
                  const { plans, victims } = recorded as { plans: DecodeStep['plans']['gathered']; victims: DecodeStep['victims']['gathered'] };
                  expect(step.plans.gathered.length).toBe(plans.length);
                  step.plans.gathered.forEach((g, j) => {
                    expect(g.row).toBe(plans[j].row);
                    g.layers.forEach((layer, r) => expect(layer).toBe(plans[j].layers[r]));
                  });
                  expect(step.victims.gathered.length).toBe(victims.length);
                  step.victims.gathered.forEach((g, j) => {
                    expect(g.row).toBe(victims[j].row);
                    g.layers.forEach((layer, r) => expect(layer).toBe(victims[j].layers[r]));
                  });
                },
              });
            }
          } else if (c.op === 'fork') h.fork(live()[c.pick % live().length]);
          else h.free(live()[c.pick % live().length]);
        }
        h.checkData();
        // The host-deciding policies' steps never skip their forward pass.
        if (s.selectOn === 'host' || s.policy === 'streaming-llm') expect(skippable[`${s.policy} ${s.selectOn}`]).toBeUndefined();
      }),
      // A fixed seed: the count below is then the same on every run (random seeds gave from 15 to over 50 a policy; this one gives 24 to 97).
      { numRuns: 300, seed: 7 },
    );
    // Every device-deciding policy had steps that may skip their forward pass (a property never exercised would prove nothing).
    for (const policy of ['arkvale', 'quest', 'h2o', 'tova', 'full']) expect(skippable[policy] ?? 0).toBeGreaterThan(10);
    expect(skippable['streaming-llm']).toBeUndefined();
  });
});
