import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CacheOptions, KvGeometry } from '../config.js';
import { commandArbitrary } from '../test-support/commands.js';
import { CacheHarness, onBoth } from '../test-support/harness.js';
import { checkConsistency } from './consistency.js';

const command = commandArbitrary({ maxPrompt: 40, maxTimes: 8 });

const scenario = fc.record({
  pageSize: fc.constantFrom(1, 2, 4),
  kvHeads: fc.constantFrom(1, 2),
  sinkPages: fc.integer({ min: 0, max: 1 }),
  windowPages: fc.integer({ min: 1, max: 2 }),
  extraPages: fc.integer({ min: 1, max: 4 }),
  fullLayers: fc.integer({ min: 0, max: 1 }),
  selection: fc.constantFrom('layer' as const, 'kv-head' as const),
  digest: fc.constantFrom('cuboid-mean' as const, 'cuboid-max' as const, 'cuboid-center' as const, 'sphere' as const),
  devicePages: fc.integer({ min: 8, max: 80 }),
  // fp8 pages: every op through the quantized pool (appends, digests, copies, recalls, attention).
  kvDtype: fc.constantFrom(undefined, 'fp8' as const),
  seed: fc.integer(),
  commands: fc.array(command, { minLength: 1, maxLength: 14 }),
});

/**
 * The device path (selectResident, recallListed, page tables replayed after the step)
 * against the specification (estimates read, `policy.decide` on the host): the same
 * random run through both caches must make the same decisions, keep the same pages
 * resident in the same slots, and attend to give the same outputs, bit for bit.
 */
describe('ArkVale selecting on the device', () => {
  it('decides, keeps and attends exactly as policy.decide on the host', () => {
    let deviceSteps = 0;
    let recalls = 0;
    let selections = 0;
    fc.assert(
      fc.property(scenario, (s) => {
        const geometry: KvGeometry = {
          numLayers: 2,
          numHeads: 2 * s.kvHeads,
          numKvHeads: s.kvHeads,
          headDim: 4,
          pageSize: s.pageSize,
          bytesPerElement: 4,
          kvDtype: s.kvDtype,
        };
        const options = (selectOn: 'device' | 'host'): CacheOptions => ({
          policy: 'arkvale',
          budgetTokens: (s.sinkPages + s.windowPages + s.extraPages) * s.pageSize,
          sinkPages: s.sinkPages,
          windowPages: s.windowPages,
          fullLayers: s.fullLayers,
          selection: s.selection,
          digest: s.digest,
          devicePages: s.devicePages,
          hostPages: 4 * s.devicePages,
          selectOn,
        });
        const device = new CacheHarness(geometry, options('device'), s.seed);
        const select = device.backend.selectResident.bind(device.backend);
        device.backend.selectResident = (args) => {
          selections++;
          return select(args);
        };
        const host = new CacheHarness(geometry, options('host'), s.seed);
        const both = onBoth(device, host);
        const live = () => device.cache.sequenceIds;
        for (const c of s.commands) {
          if (c.op === 'admit') {
            const [a, b] = both((h) => h.admit(c.length));
            expect(a instanceof Error).toBe(b instanceof Error);
          } else if (live().length === 0) continue;
          else if (c.op === 'step') {
            const ids = [...new Set(c.pick.map((i) => live()[i % live().length]))];
            for (let i = 0; i < c.times; i++) {
              const [a, b] = both((h) => h.step(ids));
              expect(a instanceof Error).toBe(b instanceof Error);
              if (!(a instanceof Error)) {
                expect(a).toEqual(b);
                deviceSteps++;
              }
            }
          } else {
            const id = live()[c.pick % live().length];
            both((h) => (c.op === 'fork' ? h.fork(id) : h.free(id)));
          }
          expect(device.cache.sequenceIds).toEqual(host.cache.sequenceIds);
          for (const id of live()) {
            for (let l = 0; l < geometry.numLayers; l++) expect(device.cache.view(id, l)).toEqual(host.cache.view(id, l));
          }
          const [ds, hs] = [device.cache.stats(), host.cache.stats()];
          expect(ds).toEqual(hs);
          checkConsistency(device.cache);
          device.checkData();
        }
        recalls += device.cache.stats().recalls;
        for (const id of live()) device.free(id);
        expect(device.cache.store.devicePool.used).toBe(0);
        expect(device.cache.store.hostPool.used).toBe(0);
      }),
      { numRuns: 800 },
    );
    // The runs must really select and recall, not only stay under budget.
    expect(deviceSteps).toBeGreaterThan(3_000);
    expect(selections).toBeGreaterThan(3_000);
    expect(recalls).toBeGreaterThan(300);
    // About 5 s alone on a 2-core machine.
  }, 120_000);
});
