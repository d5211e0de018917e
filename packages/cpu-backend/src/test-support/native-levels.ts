import { afterAll } from 'vitest';
import { loadNative, type SimdLevel } from '../native.js';

/**
 * The instruction sets this machine can run ('generic' always, 'avx2-fma' where
 * supported), so tests cover the portable kernels as well as the fast ones.
 * Restores the automatic choice after the file's tests.
 */
export function simdLevels(): SimdLevel[] {
  const addon = loadNative().addon;
  if (!addon) return ['generic'];
  afterAll(() => {
    addon.setSimd('auto');
  });
  const levels: SimdLevel[] = ['generic'];
  try {
    addon.setSimd('avx2-fma');
    levels.push('avx2-fma');
  } catch {
    // This CPU has no AVX2/FMA: the generic kernels are all it runs.
  }
  addon.setSimd('auto');
  return levels;
}

/** Runs `body` with the native kernels forced to `level` (a no-op without the addon). */
export function withSimd<T>(level: SimdLevel, body: () => T): T {
  const addon = loadNative().addon;
  if (!addon) return body();
  addon.setSimd(level);
  try {
    return body();
  } finally {
    addon.setSimd('auto');
  }
}
