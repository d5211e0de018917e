import { createRequire } from 'node:module';
import { ConfigError } from '@arkvale/core';

/** The functions of build/Release/arkvale_cpu.node (see native/addon.cc). Outputs are caller-allocated and overwritten. */
export interface NativeAddon {
  matmul(x: Float32Array, w: Float32Array, out: Float32Array, m: number, n: number, k: number): void;
  causalAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    keyScores: Float32Array | null,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    scale: number,
    stats: KeyStatsCode,
  ): void;
  pagedAttention(
    q: Float32Array,
    kv: Float32Array,
    pageTable: Int32Array,
    pageCounts: Int32Array,
    lastPageLens: Int32Array,
    out: Float32Array,
    tokenScores: Float32Array | null,
    batch: number,
    groups: number,
    maxPages: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    pageSize: number,
    scale: number,
  ): void;
  threads(): number;
  defaultThreads(): number;
  setThreads(threads: number): number;
  simd(): SimdLevel;
  setSimd(level: 'auto' | SimdLevel): SimdLevel;
}

/** 0: no key statistics, 1: 'sum', 2: 'last'. */
export type KeyStatsCode = 0 | 1 | 2;
export type SimdLevel = 'avx2-fma' | 'generic';

export interface NativeLoad {
  readonly addon?: NativeAddon;
  /** Why `addon` is missing. */
  readonly reason?: string;
}

export const BUILD_HINT = 'run pnpm --filter @arkvale/cpu-backend build';
const MAX_THREADS = 256;

/** ARKVALE_CPU_THREADS as a thread count, or undefined when unset; a bad value is a configuration error. */
export function threadsFromEnv(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new ConfigError(`ARKVALE_CPU_THREADS must be an integer from 1 to ${MAX_THREADS}, got '${value}'`);
  }
  return n;
}

/** ARKVALE_CPU_SIMD: 'generic' forces the portable kernels; unset or 'auto' picks the best the CPU has. */
export function simdFromEnv(value: string | undefined): 'auto' | 'generic' {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'generic') return 'generic';
  throw new ConfigError(`ARKVALE_CPU_SIMD must be 'auto' or 'generic', got '${value}'`);
}

function describeLoadError(err: unknown, override: string | undefined): string {
  const e = err as NodeJS.ErrnoException;
  const missing = e?.code === 'MODULE_NOT_FOUND' || /Cannot find module/.test(String(e?.message));
  if (override) return `ARKVALE_CPU_ADDON=${override} ${missing ? 'does not exist' : `failed to load (${e?.message ?? String(err)})`}`;
  if (missing) return `native addon not built: ${BUILD_HINT}`;
  return `native addon failed to load (${e?.message ?? String(err)}); rebuild it: ${BUILD_HINT}`;
}

function requireAddon(override: string | undefined): NativeAddon {
  const require = createRequire(import.meta.url);
  // A literal path relative to this file (src/ or dist/ alike), so bundlers that
  // follow static requires can find and copy the binary.
  return (override ? require(override) : require('../build/Release/arkvale_cpu.node')) as NativeAddon;
}

let loaded: NativeLoad | undefined;

/**
 * Loads and configures the addon once per process (per JS thread). Never throws
 * for a missing or broken addon, only for bad ARKVALE_CPU_* settings.
 */
export function loadNative(): NativeLoad {
  if (loaded) return loaded;
  const threads = threadsFromEnv(process.env.ARKVALE_CPU_THREADS);
  const simd = simdFromEnv(process.env.ARKVALE_CPU_SIMD);
  const override = process.env.ARKVALE_CPU_ADDON || undefined;
  try {
    const addon = requireAddon(override);
    // Resizing is only safe before kernels run, and another JS thread may already
    // be running them: only touch the pool when the count really changes.
    const wanted = threads ?? addon.defaultThreads();
    if (addon.threads() !== wanted) addon.setThreads(wanted);
    addon.setSimd(simd);
    loaded = { addon };
  } catch (err) {
    loaded = { reason: describeLoadError(err, override) };
  }
  return loaded;
}
