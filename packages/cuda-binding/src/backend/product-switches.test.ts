// CudaBackend's product switches over an addon that does nothing: gemv, stream_gemm and tuned
// cuBLAS products from their options and the environment, and the invariant blocks each gives the engine.
import { afterEach, describe, expect, it } from 'vitest';
import { idleCudaAddon } from '../idle-addon.js';
import type { CudaAddon, GemmParams } from '../native.js';
import { CudaBackend, type CudaBackendOptions } from './cuda-backend.js';

describe('product switches', () => {
  const names = ['ARKVALE_GEMV', 'ARKVALE_STREAM_GEMM', 'ARKVALE_TUNED_PRODUCTS'] as const;
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

  it('tunes cuBLAS products by default; ARKVALE_TUNED_PRODUCTS=0 turns that off, and the option wins over the environment', () => {
    delete process.env.ARKVALE_TUNED_PRODUCTS;
    expect(backend().tunedProducts).toBe(true);
    process.env.ARKVALE_TUNED_PRODUCTS = '0';
    expect(backend().tunedProducts).toBe(false);
    expect(backend({ tunedProducts: true }).tunedProducts).toBe(true);
    process.env.ARKVALE_TUNED_PRODUCTS = '1';
    expect(backend({ tunedProducts: false }).tunedProducts).toBe(false);
  });

  it('asks cuBLAS to tune products of up to 64 rows only, only when tunedProducts is on, and keeps the invariant blocks', () => {
    for (const name of names) delete process.env[name];
    const tuneFlags = (options: CudaBackendOptions, rows: readonly number[]) => {
      const { addon } = idleCudaAddon();
      const calls: GemmParams[] = [];
      const b = new CudaBackend({ addon: { ...addon, gemm: (p: GemmParams) => calls.push(p) } as CudaAddon, graphs: false, ...options });
      const w = b.fromArray(new Float32Array(8 * 16), [8, 16]);
      for (const m of rows) b.matmul(b.fromArray(new Float32Array(m * 16), [m, 16]), w);
      return calls.map((p) => p.tune ?? false);
    };
    expect(tuneFlags({ tunedProducts: true }, [1, 64, 65, 4096])).toEqual([true, true, false, false]);
    expect(tuneFlags({ tunedProducts: false }, [1, 64])).toEqual([false, false]);
    expect(backend({ tunedProducts: true }).invariantProducts).toEqual({ rows: 64, pad: true });
  });
});
