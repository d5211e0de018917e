import { describe, expect, it } from 'vitest';
import { POLICY_NAMES } from '../config.js';
import type { KvGeometry, PolicyName } from '../config.js';
import { CacheHarness } from '../test-support/harness.js';
import { checkConsistency } from './consistency.js';

const geometry: KvGeometry = { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };

function harness(policy: PolicyName, seed: number): CacheHarness {
  return new CacheHarness(geometry, { policy, budgetTokens: 16, fullLayers: policy === 'arkvale' ? 1 : 0, devicePages: 80, hostPages: 120 }, seed);
}

describe('parking', () => {
  for (const policy of POLICY_NAMES) {
    it(`${policy}: a parked sequence holds no device page and resumes exactly as it was`, () => {
      // Two harnesses with the same random stream: one parks and resumes, the other never does.
      const parked = harness(policy, 3);
      const plain = harness(policy, 3);
      const [a, b] = [parked.admit(37), plain.admit(37)];
      for (let i = 0; i < 6; i++) {
        parked.step([a]);
        plain.step([b]);
      }
      const device = parked.cache.stats().device.used;
      const before = [0, 1].map((l) => parked.cache.view(a, l));
      const needs = parked.cache.parkNeeds(a).host;
      expect(parked.cache.park(a)).toBe(needs);
      expect(parked.cache.stats().device.used).toBe(0);
      expect(parked.cache.stats().parkedSequences).toBe(1);
      expect(parked.cache.resumeNeeds(a).device).toBe(device);
      checkConsistency(parked.cache);
      parked.checkData();
      expect(() => parked.cache.beginStep([a])).toThrow(/parked/);
      expect(() => parked.cache.fork(a)).toThrow(/parked/);
      expect(() => parked.cache.park(a)).toThrow(/already parked/);

      const moved = parked.cache.resume(a);
      expect(moved).toBe(device);
      [0, 1].forEach((l) => {
        const v = parked.cache.view(a, l);
        if (v.kind === 'page') expect(v.resident).toEqual((before[l] as { resident: number[] }).resident);
        else expect(v.positions).toEqual((before[l] as { positions: number[] }).positions);
      });
      checkConsistency(parked.cache);
      parked.checkData();
      for (let i = 0; i < 8; i++) {
        parked.step([a]);
        plain.step([b]);
      }
      parked.checkData();
      const [s, t] = [parked.cache.stats(), plain.cache.stats()];
      expect(s.residentPages).toBe(t.residentPages);
      expect(s.recalls).toBe(t.recalls);
      expect(s.resumedPages).toBe(device);
      // ArkVale's budgeted layer copies only its partial page; its full pages are backed up already.
      if (policy === 'arkvale') expect(s.parkedPages).toBeLessThan(device);
      parked.cache.park(a);
      parked.free(a);
      expect(parked.cache.stats().device.used).toBe(0);
      expect(parked.cache.stats().host.used).toBe(0);
    });
  }

  it('refuses to park when the host pool is short, changing nothing', () => {
    const h = new CacheHarness(geometry, { policy: 'full', budgetTokens: 16, devicePages: 40, hostPages: 3 }, 1);
    const id = h.admit(20);
    const before = JSON.stringify(h.cache.stats());
    expect(() => h.cache.park(id)).toThrow(/host page pool exhausted/);
    expect(JSON.stringify(h.cache.stats())).toBe(before);
    checkConsistency(h.cache);
  });
});
