import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { POLICY_NAMES } from '../config.js';
import type { CacheOptions } from '../config.js';
import { ArkvaleError, PoolExhaustedError } from '../errors.js';
import { commandArbitrary } from '../test-support/commands.js';
import { CacheHarness } from '../test-support/harness.js';
import { checkConsistency } from './consistency.js';
import { smallGeometry } from '../test-support/small-geometry.js';

const command = commandArbitrary({ maxPrompt: 20, maxTimes: 6 });

const scenario = fc.record({
  policy: fc.constantFrom(...POLICY_NAMES),
  pageSize: fc.constantFrom(1, 2, 4),
  kvHeads: fc.constantFrom(1, 2),
  sinkPages: fc.integer({ min: 0, max: 1 }),
  windowPages: fc.integer({ min: 1, max: 2 }),
  extraPages: fc.integer({ min: 0, max: 3 }),
  fullLayers: fc.integer({ min: 0, max: 1 }),
  selection: fc.constantFrom('layer' as const, 'kv-head' as const),
  digest: fc.constantFrom('cuboid-mean' as const, 'cuboid-max' as const, 'cuboid-center' as const, 'sphere' as const),
  devicePages: fc.integer({ min: 4, max: 60 }),
  hostPages: fc.integer({ min: 0, max: 60 }),
  // fp8 pages: every op through the quantized pool (appends, digests, copies, recalls, attention).
  kvDtype: fc.constantFrom(undefined, 'fp8' as const),
  seed: fc.integer(),
  commands: fc.array(command, { minLength: 1, maxLength: 14 }),
});

describe('KvCache under random admit / grow / step / fork / free', () => {
  it('keeps every invariant and every byte, and empties every pool', () => {
    let steps = 0;
    let recalls = 0;
    let evictedTokens = 0;
    fc.assert(
      fc.property(scenario, (s) => {
        const geometry = smallGeometry(s);
        // Token-level policies need two cells: one kept token and the incoming one.
        const budgetPages = Math.max(s.sinkPages + s.windowPages + s.extraPages, Math.ceil(2 / s.pageSize));
        const options: CacheOptions = {
          policy: s.policy,
          budgetTokens: budgetPages * s.pageSize,
          sinkPages: s.sinkPages,
          windowPages: s.windowPages,
          fullLayers: s.fullLayers,
          selection: s.selection,
          digest: s.policy === 'quest' ? 'cuboid-max' : s.digest,
          sinkTokens: Math.min(2, budgetPages * s.pageSize - 2),
          devicePages: s.devicePages,
          hostPages: s.hostPages,
        };
        const h = new CacheHarness(geometry, options, s.seed);
        const live = () => h.cache.sequenceIds;
        for (const c of s.commands) {
          try {
            if (c.op === 'admit') h.admit(c.length);
            else if (live().length === 0) continue;
            else if (c.op === 'step') {
              const ids = [...new Set(c.pick.map((i) => live()[i % live().length]))];
              for (let i = 0; i < c.times; i++) {
                h.step(ids);
                steps++;
              }
            } else if (c.op === 'fork') h.fork(live()[c.pick % live().length]);
            else h.free(live()[c.pick % live().length]);
          } catch (e) {
            // Running out of pages is a legal outcome; anything else is a bug.
            if (!(e instanceof PoolExhaustedError)) throw e;
          }
          checkConsistency(h.cache);
          h.checkData();
        }
        recalls += h.cache.stats().recalls;
        evictedTokens += h.cache.stats().evictedTokens;
        for (const id of live()) h.free(id);
        expect(h.cache.store.devicePool.used).toBe(0);
        expect(h.cache.store.hostPool.used).toBe(0);
        expect(h.cache.store.digestPool.used).toBe(0);
        expect(() => h.cache.free(1)).toThrow(ArkvaleError);
      }),
      { numRuns: 10_000 },
    );
    // The generator must really exercise decoding, not only admissions.
    expect(steps).toBeGreaterThan(20_000);
    expect(recalls).toBeGreaterThan(1_000);
    expect(evictedTokens).toBeGreaterThan(1_000);
    // 10,000 runs: about 7 s alone on a 2-core machine, 20 s beside the other packages' tests.
  }, 120_000);
});
