import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CacheOptions } from '../config.js';
import { commandArbitrary } from '../test-support/commands.js';
import { CacheHarness, coarsen } from '../test-support/harness.js';
import { runOnBoth } from '../test-support/run-on-both.js';
import { smallGeometry } from '../test-support/small-geometry.js';

const command = commandArbitrary({ maxPrompt: 40, maxTimes: 8 });

const scenario = fc.record({
  pageSize: fc.constantFrom(1, 2, 4),
  kvHeads: fc.constantFrom(1, 2),
  headsPerKv: fc.constantFrom(1, 2),
  budgetPages: fc.integer({ min: 1, max: 6 }),
  fullLayers: fc.integer({ min: 0, max: 1 }),
  digest: fc.constantFrom('cuboid-mean' as const, 'cuboid-max' as const, 'cuboid-center' as const, 'sphere' as const),
  // Coarse inputs: many estimates tie, so the tie rule (lower page first) is exercised.
  coarse: fc.boolean(),
  devicePages: fc.integer({ min: 8, max: 80 }),
  kvDtype: fc.constantFrom(undefined, 'fp8' as const),
  seed: fc.integer(),
  commands: fc.array(command, { minLength: 1, maxLength: 14 }),
});

/**
 * Quest's device path (selectAttend over the device page tables) against the
 * specification (estimates read, `policy.decide` on the host): the same random run
 * through both caches must keep the same pages and attend to give the same outputs.
 */
describe('Quest selecting on the device', () => {
  it('attends exactly as policy.decide on the host', () => {
    let selections = 0;
    let selectedRows = 0;
    fc.assert(
      fc.property(scenario, (s) => {
        const geometry = smallGeometry(s);
        const options = (selectOn: 'device' | 'host'): CacheOptions => ({
          policy: 'quest',
          budgetTokens: s.budgetPages * s.pageSize,
          // Quest ignores sinks and window; these only let a budget of one page pass the checks.
          sinkPages: 0,
          windowPages: 1,
          fullLayers: s.fullLayers,
          digest: s.digest,
          devicePages: s.devicePages,
          hostPages: 4 * s.devicePages,
          selectOn,
        });
        const device = new CacheHarness(geometry, options('device'), s.seed);
        const selectAttend = device.backend.selectAttend!.bind(device.backend);
        device.backend.selectAttend = (args) => {
          selections++;
          const out = selectAttend(args);
          const rows = device.backend.readSync(args.rows);
          for (let r = 0; r < args.rows.shape[0]; r++) if (rows[r * 5 + 3] > args.k) selectedRows++;
          return out;
        };
        const host = new CacheHarness(geometry, options('host'), s.seed);
        host.backend.selectAttend = () => {
          throw new Error('the host path must not select on the device');
        };
        if (s.coarse) coarsen(device, host);
        runOnBoth(device, host, s.commands);
        for (const id of device.cache.sequenceIds) device.free(id);
        expect(device.cache.store.devicePool.used).toBe(0);
      }),
      { numRuns: 500 },
    );
    // The runs must really choose among candidates, not only stay under budget.
    expect(selections).toBeGreaterThan(2_000);
    expect(selectedRows).toBeGreaterThan(1_000);
  }, 120_000);
});
