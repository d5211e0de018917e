import { ReferenceBackend, seededUniform } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { describe, expect, it } from 'vitest';
import { fp8KvChecks } from './kv-checks.js';
import { Twin } from './twin.js';

/**
 * The fp8 page checks of `arkvale selftest`, run here with the CPU backend standing in
 * for the GPU (it stores fp8 pages as the reference does): every check passes, so a
 * failure on a GPU is the CUDA backend's, not the check's.
 */
describe('the fp8 page checks of the self-test', () => {
  it.each([
    { headDim: 64, pageSize: 16, group: 2 },
    { headDim: 128, pageSize: 32, group: 8 },
  ])('pass for a backend that stores fp8 pages as the reference does (hd $headDim, pages of $pageSize, group $group)', (shape) => {
    const t = new Twin(new CpuBackend(), new ReferenceBackend(), 'f16', seededUniform(7));
    const results = fp8KvChecks(t, shape);
    expect(new Set(results.map((r) => r.check))).toEqual(
      new Set([
        'appendKv (fp8 pages)',
        'digestPages + estimate (fp8 pages)',
        'pagedAttention (fp8 pages)',
        'pagedAttention token scores (fp8 pages)',
        'chunkAttention (fp8 pages)',
        'copyPages + recallListed (fp8 pages)',
      ]),
    );
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });
});
