import { fileURLToPath } from 'node:url';
import { CpuBackend } from '@arkvale/cpu-backend';
import { describe, expect, it } from 'vitest';
import { prefixCacheChecks } from './prefix-checks.js';

const modelDir = fileURLToPath(new URL('../../../../models/tiny-retrieval', import.meta.url));

/**
 * The prefix-cache check of `arkvale selftest`, run with the CPU backend standing in for
 * the GPU: it passes, so a failure on a GPU is the CUDA backend's, not the check's.
 */
describe('the prefix-cache check of the self-test', () => {
  it('passes on the CPU: cached questions answer as prefilled whole, and start from the document', async () => {
    const results = await prefixCacheChecks(modelDir, new CpuBackend(), 'cpu');
    expect(results).toHaveLength(5);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  }, 60_000);
});
