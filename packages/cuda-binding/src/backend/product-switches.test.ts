// CudaBackend's product switches over an addon that does nothing: gemv and skinny_gemm from
// their options and the environment, and the invariant blocks each gives the engine.
import { afterEach, describe, expect, it } from 'vitest';
import { idleCudaAddon } from '../idle-addon.js';
import { CudaBackend } from './cuda-backend.js';

describe('product switches', () => {
  const saved = { gemv: process.env.ARKVALE_GEMV, skinny: process.env.ARKVALE_SKINNY_GEMM };
  afterEach(() => {
    for (const [name, value] of [
      ['ARKVALE_GEMV', saved.gemv],
      ['ARKVALE_SKINNY_GEMM', saved.skinny],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  const backend = (options: { gemv?: boolean; skinnyGemm?: boolean } = {}) => new CudaBackend({ addon: idleCudaAddon().addon, graphs: false, ...options });

  it('pads decode products to 64 rows by default (cuBLAS), not with skinny_gemm, and blocks 4 unpadded rows with gemv', () => {
    delete process.env.ARKVALE_GEMV;
    delete process.env.ARKVALE_SKINNY_GEMM;
    expect(backend().gemv).toBe(false);
    expect(backend().invariantProducts).toEqual({ rows: 64, pad: true });
    expect(backend({ skinnyGemm: true }).invariantProducts).toEqual({ rows: 64, pad: false });
    expect(backend({ gemv: true }).invariantProducts).toEqual({ rows: 4, pad: false });
    // gemv takes small products first, so its blocks win.
    expect(backend({ gemv: true, skinnyGemm: true }).invariantProducts).toEqual({ rows: 4, pad: false });
  });

  it('turns gemv on with ARKVALE_GEMV=1, and the option wins over the environment', () => {
    process.env.ARKVALE_GEMV = '1';
    expect(backend().gemv).toBe(true);
    expect(backend({ gemv: false }).gemv).toBe(false);
    process.env.ARKVALE_GEMV = '0';
    expect(backend().gemv).toBe(false);
  });
});
