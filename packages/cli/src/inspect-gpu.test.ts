import { cudaStatus } from '@arkvale/cuda-binding';
import { describe, expect, it } from 'vitest';
import { cli } from './test-support.js';

describe('arkvale inspect gpu', () => {
  const status = cudaStatus();

  it('prints the state, or why there is no GPU, and exits 0', async () => {
    const r = await cli(['inspect', 'gpu']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    if (status.available) {
      expect(r.out).toMatch(/^CUDA +available: /);
      expect(r.out).toMatch(/\ncuBLAS +libcublas/);
      return;
    }
    // This machine has no GPU: the first line is the reason, word for word.
    expect(r.out.split('\n')[0]).toMatch(new RegExp(`^CUDA +unavailable: ${status.reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    expect(r.out).toMatch(/\ndriver +/);
    expect(r.out).toMatch(/\ncuBLAS +not probed \(no usable device\)/);
    if (status.addon.loaded) {
      expect(r.out).toMatch(/\naddon +built for .*compute_\d+/);
      // NCCL is looked for without a GPU too: found, or the files tried.
      expect(r.out).toMatch(/\nNCCL +(.*libnccl.* \(\d+\.\d+\.\d+\)|not found: .*tried .*libnccl\.so)\n/);
      expect(r.out).toMatch(new RegExp(`\\nkernels +${status.kernels.total} specialisations in \\d+ families`));
      expect(r.out).toMatch(/\n {2}paged_decode +\d+/);
    } else {
      expect(r.out).toMatch(/\naddon +addon not built: /);
    }
  });

  it('prints everything with --json', async () => {
    const r = await cli(['inspect', 'gpu', '--json']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json).toMatchObject({ available: status.available, reason: status.reason, summary: status.summary });
    expect(json.kernels.total).toBe(status.kernels.total);
    if (status.addon.loaded) expect(typeof json.nccl.loaded).toBe('boolean');
  });
});
