import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CacheOptions } from '../config.js';
import { commandArbitrary } from '../test-support/commands.js';
import { CacheHarness } from '../test-support/harness.js';
import { runOnBoth } from '../test-support/run-on-both.js';
import { smallGeometry } from '../test-support/small-geometry.js';

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
        const geometry = smallGeometry(s);
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
        deviceSteps += runOnBoth(device, host, s.commands);
        recalls += device.cache.stats().recalls;
        for (const id of device.cache.sequenceIds) device.free(id);
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
