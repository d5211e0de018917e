import { describe, expect, it } from 'vitest';
import type { KvGeometry } from '@arkvale/core';
import { STREAM } from '../native.js';
import { fakeDevice } from '../test-support/fake-device.js';
import { causalAttention, chunkAttention, pagedAttention } from './attention-ops.js';
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

describe('fp8 pools on the CUDA backend attend with the fp8 kernel families', () => {
  const fp8: KvGeometry = { ...g, kvDtype: 'fp8' };
  const fp8PageBytes = 2 * 32 * 32 * 128 + 2 * 32 * 32;

  it('chunkAttention launches paged_prefill_fp8 with the same grid and splits, then the exact merge', () => {
    const { d, launches } = fakeDevice();
    const pool = new CudaKvStorage('device', 2000, fp8, fp8PageBytes, 0x100000n, 0n);
    const t = (shape: number[], dtype: 'f16' | 'i32') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
    const before = d.lifetimes.liveTensors;
    const out = chunkAttention(d, { q: t([32, 32, 128], 'f16'), storage: pool, pageSlots: t([962], 'i32'), start: 30_720, scale: 0.088 });
    expect(launches).toEqual([
      `paged_prefill_fp8_f16_hd128_ps32 [1, 32, 8] on ${STREAM.compute}`,
      `paged_decode_merge_f16_hd128 [1024, 1, 1] on ${STREAM.compute}`,
    ]);
    expect(out.shape).toEqual([32, 32, 128]);
    expect(d.lifetimes.liveTensors - before).toBe(1);
  });

  it('pagedAttention launches paged_decode_fp8 (its last splits merge) and paged_token_scores_fp8, and frees its workspaces', () => {
    const { d, launches } = fakeDevice();
    const gqa: KvGeometry = { ...fp8, numKvHeads: 8 };
    const pool = new CudaKvStorage('device', 100, gqa, 2 * 8 * 32 * 128 + 2 * 8 * 32, 0x100000n, 0n);
    const t = (shape: number[], dtype: 'f16' | 'i32') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
    const before = d.lifetimes.liveTensors;
    const { out, tokenScores } = pagedAttention(d, {
      q: t([2, 32, 128], 'f16'),
      storage: pool,
      pageTable: t([2, 1, 10], 'i32'),
      pageCounts: t([2, 1], 'i32'),
      lastPageLens: t([2, 1], 'i32'),
      scale: 0.088,
      returnTokenScores: true,
    });
    // 2 x 32 / 4 = 16 blocks; 320 tokens are one split of 512, whatever the batch.
    expect(launches).toEqual([
      `paged_decode_fp8_f16_hd128_ps32_g4 [16, 1, 1] on ${STREAM.compute}`,
      `paged_token_scores_fp8_f16_hd128_ps32 [2, 80, 1] on ${STREAM.compute}`,
    ]);
    expect(out.shape).toEqual([2, 32, 128]);
    expect(tokenScores?.shape).toEqual([2, 1, 320]);
    expect(d.lifetimes.liveTensors - before).toBe(2);
  });

  it('pagedAttention refuses more blocks of heads than the split counters hold, before launching anything', () => {
    const { d, launches } = fakeDevice();
    const pool = new CudaKvStorage('device', 100, g, 2 * 32 * 32 * 128 * 2, 0x100000n, 0n);
    const t = (shape: number[], dtype: 'f16' | 'i32') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
    // 2049 rows x 32 heads, one head a block (32 KV heads): 65,568 blocks.
    const args = { storage: pool, pageTable: t([2049, 1, 4], 'i32'), pageCounts: t([2049, 1], 'i32'), lastPageLens: t([2049, 1], 'i32'), scale: 1 };
    expect(() => pagedAttention(d, { ...args, q: t([2049, 32, 128], 'f16') })).toThrow(
      'pagedAttention: 65568 blocks of heads, more than the 65536 split counters',
    );
    expect(launches).toEqual([]);
  });
});

describe('causalAttention on the CUDA backend', () => {
  it('launches causal_prefill over (query tiles of 128 rows, heads), with two K/V stages unless the device says one', () => {
    const { d, launches } = fakeDevice();
    const t = (shape: number[]) => d.lifetimes.untracked(() => d.empty(shape, 'f16', 'test input'));
    const [q, k, v] = [t([300, 32, 128]), t([300, 8, 128]), t([300, 8, 128])];
    causalAttention(d, { q, k, v, scale: 0.088 });
    d.prefillStages = 1;
    causalAttention(d, { q, k, v, scale: 0.088 });
    expect(launches).toEqual([`causal_prefill_f16_hd128_s2 [3, 32, 1] on ${STREAM.compute}`, `causal_prefill_f16_hd128 [3, 32, 1] on ${STREAM.compute}`]);
  });

  it('takes one stage where two need more shared memory than the GPU has, and refuses a kernel past its limit by name', () => {
    const { d, launches } = fakeDevice();
    const t = (shape: number[]) => d.lifetimes.untracked(() => d.empty(shape, 'f16', 'test input'));
    const [q, k, v] = [t([300, 32, 128]), t([300, 8, 128]), t([300, 8, 128])];
    // sm_86 and sm_89: 99 KB a block; two stages at head dim 128 need 102 KB.
    d.maxSharedPerBlock = 99 * 1024;
    causalAttention(d, { q, k, v, scale: 0.088 });
    expect(launches).toEqual([`causal_prefill_f16_hd128 [3, 32, 1] on ${STREAM.compute}`]);
    d.maxSharedPerBlock = 48 * 1024;
    expect(() => causalAttention(d, { q, k, v, scale: 0.088 })).toThrow(
      'causal_prefill_f16_hd128 needs 69632 bytes of shared memory a block; this GPU allows 49152',
    );
    expect(launches).toHaveLength(1);
  });
});
