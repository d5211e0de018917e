import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, DigestVariant, PolicyName, SelectionScope } from '@arkvale/core';
import { ArkvaleError, DIGEST_VARIANTS, POLICY_NAMES, ReferenceBackend, invalidArgument } from '@arkvale/core';
import { CpuBackend, cpuBackendInfo } from '@arkvale/cpu-backend';
import { CudaBackend, cudaStatus } from '@arkvale/cuda-binding';
import type { CachePlan } from '@arkvale/model-llama';

export const BACKENDS = ['auto', 'cuda', 'cpu', 'reference'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const GPU_DTYPES = ['f16', 'bf16'] as const;
export type GpuDtype = (typeof GPU_DTYPES)[number];

export function parseIntOption(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw invalidArgument(`${name} must be an integer >= ${min}, got "${value}"`);
    return n;
  };
}

export function parseFloatOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw invalidArgument(`${name} must be a number, got "${value}"`);
    return n;
  };
}

export function parsePolicy(value: string): PolicyName {
  if (!(POLICY_NAMES as readonly string[]).includes(value)) {
    throw invalidArgument(`unknown policy "${value}"; expected one of: ${POLICY_NAMES.join(', ')}`);
  }
  return value as PolicyName;
}

export function parseList<T>(parse: (v: string) => T) {
  return (value: string): T[] => value.split(',').map((v) => v.trim()).filter(Boolean).map(parse);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The model folder: --model, then $ARKVALE_MODEL, then the bundled model under the working directory. */
export function resolveModelDir(given: string | undefined): string {
  if (given) return given;
  if (process.env.ARKVALE_MODEL) return process.env.ARKVALE_MODEL;
  const bundled = join(process.cwd(), 'models', 'tiny-retrieval');
  if (existsSync(bundled)) return bundled;
  throw new ArkvaleError('MODEL_FILE', 'no model given: pass --model DIR (a Hugging Face LLaMA folder) or set ARKVALE_MODEL');
}

export interface BackendChoice {
  /** --dtype for the CUDA backend (default: f16). */
  readonly dtype?: GpuDtype;
}

/**
 * The backend a command runs on. `auto` takes CUDA when it is usable (and says why
 * not otherwise), then the native CPU backend; `cpu` falls back to the reference
 * kernels with a warning when its addon is not built; `cuda` fails with the reason.
 */
/** Throws INVALID_ARGUMENT for a backend or dtype name that does not exist. */
export function checkBackendChoice(name: string, dtype: string | undefined): void {
  if (!(BACKENDS as readonly string[]).includes(name)) throw invalidArgument(`unknown backend "${name}"; expected one of: ${BACKENDS.join(', ')}`);
  if (dtype !== undefined && !(GPU_DTYPES as readonly string[]).includes(dtype)) {
    throw invalidArgument(`unknown dtype "${dtype}"; expected one of: ${GPU_DTYPES.join(', ')}`);
  }
}

export function createBackend(name: string, warn: (text: string) => void, choice: BackendChoice = {}): Backend {
  checkBackendChoice(name, choice.dtype);
  const backend = pickBackend(name, warn, choice);
  if (choice.dtype !== undefined && !(backend instanceof CudaBackend)) warn(`note: --dtype applies to the CUDA backend; the ${backend.name} backend computes in f32\n`);
  return backend;
}

function pickBackend(name: string, warn: (text: string) => void, choice: BackendChoice): Backend {
  if (name === 'reference') return new ReferenceBackend();
  if (name === 'cuda' || name === 'auto') {
    const status = cudaStatus();
    if (status.available) return new CudaBackend({ dtype: choice.dtype });
    if (name === 'cuda') throw new ArkvaleError('NO_DEVICE', `--backend cuda: ${status.reason}`);
    warn(`note: CUDA unavailable (${status.reason}); using the CPU backend\n`);
  }
  const info = cpuBackendInfo();
  if (!info.native) warn(`warning: native CPU kernels unavailable (${info.reason ?? 'unknown reason'}); running the slow reference kernels\n`);
  return new CpuBackend();
}

/** The backend as summary lines name it: `cuda (NVIDIA H200, f16)`, `cpu`. */
export function describeBackend(b: Backend): string {
  return b instanceof CudaBackend ? `cuda (${b.deviceName}, ${b.dtype})` : b.name;
}

export function parseFraction(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0 && n <= 1)) throw invalidArgument(`${name} must be a number in (0, 1], got "${value}"`);
    return n;
  };
}

export interface CacheFlags {
  policy: string;
  budget: number;
  pageSize: number;
  sinks?: number;
  window?: number;
  fullLayers?: number;
  topK?: number;
  digest?: string;
  selection?: string;
}

export function cachePlan(f: CacheFlags, policy: PolicyName = parsePolicy(f.policy), budget = f.budget): CachePlan {
  if (f.digest !== undefined && !(DIGEST_VARIANTS as readonly string[]).includes(f.digest)) {
    throw invalidArgument(`unknown digest "${f.digest}"; expected one of: ${DIGEST_VARIANTS.join(', ')}`);
  }
  return {
    policy,
    budgetTokens: budget,
    pageSize: f.pageSize,
    sinkPages: f.sinks,
    windowPages: f.window,
    fullLayers: f.fullLayers,
    topK: f.topK,
    digest: f.digest as DigestVariant | undefined,
    selection: f.selection as SelectionScope | undefined,
  };
}
