// CudaBackend's product switches over an addon that does nothing: gemv and stream_gemm from
// their options and the environment, and the invariant blocks each gives the engine.
import { afterEach, describe, expect, it } from 'vitest';
import { idleCudaAddon } from '../idle-addon.js';
import { CudaBackend, type CudaBackendOptions } from './cuda-backend.js';

describe('product switches', () => {
  const names = ['ARKVALE_GEMV', 'ARKVALE_STREAM_GEMM'] as const;
  const saved = names.map((name) => [name, process.env[name]] as const);
  afterEach(() => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  const backend = (options: CudaBackendOptions = {}) => new CudaBackend({ addon: idleCudaAddon().addon, graphs: false, ...options });

  it('pads decode products to 64 rows by default (cuBLAS), not with stream_gemm, and blocks 4 unpadded rows with gemv', () => {
    for (const name of names) delete process.env[name];
    expect([backend().gemv, backend().streamGemm]).toEqual([false, false]);
    expect(backend().invariantProducts).toEqual({ rows: 64, pad: true });
    expect(backend({ streamGemm: true }).invariantProducts).toEqual({ rows: 64, pad: false });
    expect(backend({ gemv: true }).invariantProducts).toEqual({ rows: 4, pad: false });
    // gemv takes small products first, so its blocks win.
    expect(backend({ gemv: true, streamGemm: true }).invariantProducts).toEqual({ rows: 4, pad: false });
  });

  it.each([
    ['ARKVALE_GEMV', 'gemv'],
    ['ARKVALE_STREAM_GEMM', 'streamGemm'],
  ] as const)('turns %s=1 on (%s), and the option wins over the environment', (name, option) => {
    process.env[name] = '1';
    expect(backend()[option]).toBe(true);
    expect(backend({ [option]: false })[option]).toBe(false);
    process.env[name] = '0';
    expect(backend()[option]).toBe(false);
  });
});
