import { type KvGeometry, ReferenceBackend, seededUniform } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { describe, expect, it } from 'vitest';
import { residentChecks } from './resident-checks.js';
import { Twin } from './twin.js';

/**
 * The device-selection checks of `arkvale selftest` (ArkVale's selectResident and
 * Quest's selectAttend), run with the CPU backend standing in for the GPU: every check
 * passes, so a failure on a GPU is the CUDA backend's, not the check's.
 */
describe('the device-selection checks of the self-test', () => {
  it('pass for a backend that selects as the reference does, Quest included', () => {
    const t = new Twin(new CpuBackend(), new ReferenceBackend(), 'f16', seededUniform(11));
    const g = (bytes: number): KvGeometry => ({ numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 64, pageSize: 16, bytesPerElement: bytes });
    const results = residentChecks(t, { headDim: 64, pageSize: 16, group: 2 }, g, 'hd 64');
    const quest = results.filter((r) => r.check === 'selectAttend lists (Quest)');
    // Every digest variant, with one group and with one a KV head.
    expect(quest).toHaveLength(8);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });
});
