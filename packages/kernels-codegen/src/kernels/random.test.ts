import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { quantize } from '../test-support/compare.js';
import { fillUniformKernel, uniformAt } from './random.kernel.js';

describe.each(['f16', 'bf16'] as const)('fill_uniform (%s)', (dtype) => {
  // 2048 elements per block: 4100 covers two blocks and a partial third.
  const n = 4100;

  it('writes the host formula for every element, rounded to the dtype, and nothing past n', () => {
    const out = EmuBuffer.from(dtype, new Float32Array(n + 8).fill(7));
    emulateKernel(fillUniformKernel, { dtype }).run({ out, n, seed: 12345, scale: 0.02 });
    const got = out.toFloat32();
    const want = quantize(
      Float32Array.from({ length: n }, (_, i) => uniformAt(i, 12345, 0.02)),
      dtype,
    );
    expect(Array.from(got.subarray(0, n))).toEqual(Array.from(want));
    expect(Array.from(got.subarray(n))).toEqual(Array(8).fill(7));
  });

  it('looks uniform in [-scale, scale): mean near 0, no value out of range, seeds differ', () => {
    const a = Float64Array.from({ length: 100_000 }, (_, i) => uniformAt(i, 1, 1));
    const mean = a.reduce((s, x) => s + x, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...a)).toBeLessThan(1);
    // Variance of U(-1, 1) is 1/3.
    expect(Math.abs(a.reduce((s, x) => s + x * x, 0) / a.length - 1 / 3)).toBeLessThan(0.01);
    expect(uniformAt(5, 1, 1)).not.toBe(uniformAt(5, 2, 1));
  });
});
