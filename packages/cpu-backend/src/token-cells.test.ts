import { KvCache, type KvGeometry, type SelectOn } from '@arkvale/core';
import { describe, expect, it, vi } from 'vitest';
import { CpuBackend } from './cpu-backend.js';
import { randomArray, rng } from './test-support/random.js';

const geometry: KvGeometry = { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, pageSize: 4, bytesPerElement: 4 };

/**
 * Three sequences over a 16-token budget decoded 20 steps on the CPU backend (its
 * native paged attention and token scores, core's token-cell operations), with the
 * eviction on the device or on the host; the same random inputs for both.
 */
function run(policy: 'h2o' | 'tova', selectOn: SelectOn) {
  const b = new CpuBackend();
  const cache = new KvCache({ geometry, options: { policy, budgetTokens: 16, fullLayers: 1, devicePages: 64, selectOn }, backend: b });
  const next = rng(5);
  const rand = (rows: number, heads: number) => b.fromArray(randomArray(next, rows * heads * geometry.headDim, 2), [rows, heads, geometry.headDim]);
  const ids = [30, 9, 47].map((n) => {
    const id = cache.admit(n);
    for (let l = 0; l < geometry.numLayers; l++) cache.prefillLayer(id, l, rand(n, 4), rand(n, 2), rand(n, 2), 0.25);
    return id;
  });
  const evict = vi.spyOn(b, 'evictTokenCells');
  const read = vi.spyOn(b, 'readSync');
  const outs: number[][] = [];
  let reads = 0;
  for (let s = 0; s < 20; s++) {
    const step = cache.beginStep(ids);
    for (let l = 0; l < geometry.numLayers; l++) {
      const before = read.mock.calls.length;
      const out = cache.decodeLayer(step, l, rand(3, 4), rand(3, 2), rand(3, 2), 0.25);
      reads += read.mock.calls.length - before;
      outs.push(Array.from(b.readSync(out)));
    }
  }
  const views = ids.map((id) => cache.view(id, 1));
  return { outs, views, evictedTokens: cache.stats().evictedTokens, evictions: evict.mock.calls.length, reads };
}

describe('H2O and TOVA on the CPU backend', () => {
  it.each(['h2o', 'tova'] as const)('%s evicts on the device exactly as on the host, with no read inside a step', (policy) => {
    const device = run(policy, 'device');
    const host = run(policy, 'host');
    expect(device.outs).toEqual(host.outs);
    expect(device.views).toEqual(host.views);
    expect(device.evictedTokens).toBe(host.evictedTokens);
    // One launch a step of the budgeted layer; the host path reads its token scores there instead.
    expect(device.evictions).toBe(20);
    expect(device.reads).toBe(0);
    expect(host.evictions).toBe(0);
    expect(host.reads).toBe(20);
  });
});
