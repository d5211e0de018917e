import { describe, expect, it } from 'vitest';
import { causalPrefillKernel } from '../kernels/causal-prefill.kernel.js';
import { rmsNormKernel } from '../kernels/rms-norm.kernel.js';
import { KernelProject } from '../translate/kernel-project.js';
import { placeSharedMemory, SHARED_LIMITS } from './shared-placement.js';
import { specialise } from './specialise.js';

const project = new KernelProject();

describe('shared memory placement', () => {
  it('moves a kernel over 48 KB into dynamic shared memory at 16-byte aligned offsets, in declaration order', () => {
    const { ir, entry, header } = specialise(project, causalPrefillKernel, { dtype: 'f16', headDim: 128, stages: 1 });
    // Q (128 rows), then one stage of K and V (64 keys each), rows of 128 + 8 halves.
    const row = 136 * 2;
    expect(entry.staticSharedBytes).toBe(0);
    expect(entry.dynamicSharedBytes).toBe(256 * row);
    expect(ir.dynamicSharedBytes).toBe(entry.dynamicSharedBytes);
    expect(header).toContain('extern __shared__ __align__(16) unsigned char arkvale_dynamic_shared[];');
    expect(header).toContain('__half* const sq = reinterpret_cast<__half*>(arkvale_dynamic_shared + 0);');
    expect(header).toContain(`__half* const skv = reinterpret_cast<__half*>(arkvale_dynamic_shared + ${128 * row});`);
    expect(header).not.toContain('__shared__ __align__(16) __half');
    expect(header).toContain(`dynamic shared memory ${256 * row} bytes`);
  });

  it('leaves a kernel within 48 KB static', () => {
    const { ir, entry, header } = specialise(project, rmsNormKernel, { dtype: 'f16' });
    expect(entry.dynamicSharedBytes).toBe(0);
    expect(ir.staticSharedBytes).toBeLessThanOrEqual(SHARED_LIMITS.staticBytes);
    expect(header).not.toContain('extern __shared__');
    expect(placeSharedMemory(ir)).toBe(ir);
  });

  it('rounds each array up to 16 bytes and refuses more than a block may have', () => {
    const { ir } = specialise(project, causalPrefillKernel, { dtype: 'f16', headDim: 128, stages: 1 });
    const shared = (name: string, length: number) => ({ k: 'array', name, t: { kind: 'array', space: 'shared', elem: 'f32', length } }) as const;
    const odd = { ...ir, body: [shared('a', 3), shared('b', 12_300)], staticSharedBytes: 12 + 4 + 49_200, dynamicSharedBytes: 0 };
    const placed = placeSharedMemory(odd);
    expect(placed.body.map((s) => (s.k === 'array' ? s.dynamicOffset : undefined))).toEqual([0, 16]);
    expect(placed.dynamicSharedBytes).toBe(16 + 49_200);
    expect(() => placeSharedMemory({ ...odd, staticSharedBytes: SHARED_LIMITS.blockBytes + 1 })).toThrow(
      `causal_prefill_f16_hd128: ${SHARED_LIMITS.blockBytes + 1} bytes of shared memory exceed sm_90's ${SHARED_LIMITS.blockBytes} a block`,
    );
  });
});
