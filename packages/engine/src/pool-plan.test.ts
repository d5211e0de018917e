import { describe, expect, it } from 'vitest';
import type { KvGeometry } from '@arkvale/core';
import { planPools } from './pool-plan.js';
import type { ServedModel } from './served-model.js';

// Pages of 16 tokens, 2 layers' worth of nothing else: 2 (K, V) x 2 heads x 64 dims x 16 tokens x 2 bytes = 8 KiB a page.
const geometry: KvGeometry = { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 64, pageSize: 16, bytesPerElement: 2 };
const model = (capacity: number | undefined): ServedModel => ({ geometry: () => geometry, devicePageCapacity: () => capacity }) as unknown as ServedModel;
const GIB = 1024 ** 3;

describe('planPools', () => {
  it('on a GPU: the device pool is what the memory share leaves, the host pool 4x that within half the machine', () => {
    const plan = planPools(model(10_000_000), { pageSize: 16 }, 512, {}, 0.9, 64 * GIB);
    expect(plan).toMatchObject({ devicePages: 10_000_000, hostPages: (32 * GIB) / 8192 });
    expect(plan.summary).toBe(
      "KV pools: 10000000 device pages (76.3 GiB, what --gpu-memory-utilization 0.9 leaves), 4194304 host pages (32.0 GiB, 50% of this machine's 64.0 GiB)",
    );
    // A small device pool (given) keeps a small host pool.
    const small = planPools(model(10_000_000), { pageSize: 16 }, 512, { devicePages: 2048 }, 0.9, 64 * GIB);
    expect(small).toMatchObject({ devicePages: 2048, hostPages: 8192 });
    expect(small.summary).toMatch(/8192 host pages \(0\.1 GiB, 4x the device pool\)$/);
  });

  it('keeps given pools, and refuses a device pool the card cannot hold, with the numbers', () => {
    expect(planPools(model(10_000), { pageSize: 16 }, 512, { devicePages: 300, hostPages: 7 }, 0.9, GIB)).toMatchObject({ devicePages: 300, hostPages: 7 });
    expect(() => planPools(model(10_000), { pageSize: 16 }, 512, { devicePages: 20_000 }, 0.8)).toThrow(
      'a device pool of 20000 pages does not fit: 10000 pages of 16 tokens fit within --gpu-memory-utilization 0.8; lower --device-pages',
    );
    expect(() => planPools(model(0), { pageSize: 16 }, 512, {}, 0.5)).toThrow(
      'no KV page fits on the device beside the weights within --gpu-memory-utilization 0.5',
    );
  });

  it('asks the model for device pages with the digests of the host pages each count brings (4x, within half the machine, or as given)', () => {
    const asked: ((d: number) => number)[] = [];
    const noting = {
      geometry: () => geometry,
      devicePageCapacity: (_ps: number, _rows: number, hostPagesFor: (d: number) => number) => {
        asked.push(hostPagesFor);
        return 1000;
      },
    } as unknown as ServedModel;
    planPools(noting, { pageSize: 16 }, 512, {}, 0.9, 64 * 8192);
    planPools(noting, { pageSize: 16 }, 512, { hostPages: 7 }, 0.9, GIB);
    // Half of 64 pages' worth of machine is 32 host pages.
    expect([asked[0](5), asked[0](100)]).toEqual([20, 32]);
    expect(asked[1](100)).toBe(7);
  });

  it('on the CPU (no device memory): 4096 device pages and four times as many on the host', () => {
    expect(planPools(model(undefined), { pageSize: 16 }, 512, {}, 0.9)).toMatchObject({ devicePages: 4096, hostPages: 16_384 });
    expect(planPools(model(undefined), { pageSize: 16 }, 512, { devicePages: 100 }, 0.9)).toMatchObject({ devicePages: 100, hostPages: 400 });
  });

  it('plans fp8 pages at their own size: the same machine share holds about twice the host pages', () => {
    const asked: (string | undefined)[] = [];
    const fp8Aware = {
      geometry: (_ps: number, kvDtype?: 'auto' | 'fp8') => (kvDtype === 'fp8' ? { ...geometry, kvDtype: 'fp8' } : geometry),
      devicePageCapacity: (_ps: number, _rows: number, _hostFor: unknown, kvDtype?: string) => (asked.push(kvDtype), 1_000_000),
    } as unknown as ServedModel;
    // fp8: 2 x 2 heads x 16 tokens x (64 codes + 1 scale byte) = 4160 bytes a page, against 8192.
    const f16 = planPools(fp8Aware, { pageSize: 16 }, 512, {}, 0.9, 64 * 8192 * 100);
    const fp8 = planPools(fp8Aware, { pageSize: 16, kvDtype: 'fp8' }, 512, {}, 0.9, 64 * 8192 * 100);
    expect(asked).toEqual([undefined, 'fp8']);
    expect(f16.hostPages).toBe(3200);
    expect(fp8.hostPages).toBe(Math.floor((64 * 8192 * 100) / 2 / 4160));
    expect(fp8.summary).toMatch(/^KV pools \(fp8 pages\): 1000000 device pages/);
  });
});
