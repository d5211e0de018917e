import { CpuBackend, type CpuBackendOptions } from './cpu-backend.js';
import { loadNative, type SimdLevel } from './native.js';

export interface CpuBackendInfo {
  /** True when the native kernels load; false means the reference code runs everything. */
  readonly native: boolean;
  /** Threads the native kernels use (the calling thread included); 1 without them. */
  readonly threads: number;
  /** Instruction set of the native kernels, when loaded. */
  readonly simd?: SimdLevel;
  /** Why the native kernels are not in use. */
  readonly reason?: string;
}

/** Whether the native addon is in use, with how many threads, and if not, why. */
export function cpuBackendInfo(): CpuBackendInfo {
  let load;
  try {
    load = loadNative();
  } catch (err) {
    return { native: false, threads: 1, reason: (err as Error).message };
  }
  const { addon, reason } = load;
  if (!addon) return { native: false, threads: 1, reason };
  return { native: true, threads: addon.threads(), simd: addon.simd() };
}

export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(options);
}
