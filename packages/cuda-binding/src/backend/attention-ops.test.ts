import { describe, expect, it } from 'vitest';
import type { KvGeometry } from '@arkvale/core';
import { STREAM } from '../native.js';
import { fakeDevice } from '../test-support/fake-device.js';
import { chunkAttention } from './attention-ops.js';
import { CudaKvStorage } from './kv-ops.js';

const g: KvGeometry = { numLayers: 1, numHeads: 32, numKvHeads: 32, headDim: 128, pageSize: 32, bytesPerElement: 2 };

describe('chunkAttention on the CUDA backend', () => {
  it('launches paged_prefill over (query tiles, heads, splits) and the exact merge, frees its workspaces and waits for nothing', () => {
    const { d, launches } = fakeDevice();
    const pool = new CudaKvStorage('device', 2000, g, 2 * 32 * 32 * 128 * 2, 0x100000n, 0n);
    const t = (shape: number[], dtype: 'f16' | 'i32') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
    // A 32-token question after a 30k-token document: one query tile per head, 8 splits of the keys fill 132 SMs.
    const q = t([32, 32, 128], 'f16');
    const slots = t([962], 'i32');
    const before = d.lifetimes.liveTensors;
    const out = chunkAttention(d, { q, storage: pool, pageSlots: slots, start: 30_720, scale: 0.088 });
    expect(launches).toEqual([
      `paged_prefill_f16_hd128_ps32 [1, 32, 8] on ${STREAM.compute}`,
      `paged_decode_merge_f16_hd128 [1024, 1, 1] on ${STREAM.compute}`,
    ]);
    expect(out.shape).toEqual([32, 32, 128]);
    expect(d.lifetimes.liveTensors - before).toBe(1);
  });

  it('refuses a query of another shape, or slots that do not cover the chunk, naming them', () => {
    const { d, launches } = fakeDevice();
    const pool = new CudaKvStorage('device', 100, g, 2 * 32 * 32 * 128 * 2, 0x100000n, 0n);
    const t = (shape: number[], dtype: 'f16' | 'i32') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
    expect(() => chunkAttention(d, { q: t([4, 8, 128], 'f16'), storage: pool, pageSlots: t([4], 'i32'), start: 0, scale: 1 })).toThrow(
      'chunkAttention: q must be [4, 32, 128], got [4,8,128]',
    );
    expect(() => chunkAttention(d, { q: t([4, 32, 128], 'f16'), storage: pool, pageSlots: t([2], 'i32'), start: 62, scale: 1 })).toThrow(
      'chunkAttention: 2 page slots do not cover positions 0..65 (start 62, 4 rows)',
    );
    expect(launches).toEqual([]);
  });
});
