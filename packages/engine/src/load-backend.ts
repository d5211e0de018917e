import { ArkvaleError, geometryKvDtype, invalidArgument, ReferenceBackend, type Backend, type KvDtype } from '@arkvale/core';

export const BACKENDS = ['auto', 'cuda', 'cpu', 'reference'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const GPU_DTYPES = ['f16', 'bf16'] as const;
export type GpuDtype = (typeof GPU_DTYPES)[number];

export interface LoadBackendOptions {
  /**
   * `auto` (default): CUDA when it is usable (else a note says why), then the native
   * CPU backend. `cuda` fails with the reason when no GPU can be used. `cpu` falls back
   * to the reference kernels, with a warning, when its addon is not built. `reference`:
   * the plain-TypeScript oracle.
   */
  readonly backend?: BackendName | (string & {});
  /** Weights, activations and KV pages on CUDA (default f16); other backends compute in f32. */
  readonly dtype?: GpuDtype | (string & {});
  /** Where notes and warnings go (each ends with a newline). Default: stderr. */
  readonly onWarning?: (text: string) => void;
}

/** Throws INVALID_ARGUMENT for a backend or dtype name that does not exist. */
export function checkBackendChoice(name: string, dtype: string | undefined): void {
  if (!(BACKENDS as readonly string[]).includes(name)) throw invalidArgument(`unknown backend "${name}"; expected one of: ${BACKENDS.join(', ')}`);
  if (dtype !== undefined && !(GPU_DTYPES as readonly string[]).includes(dtype)) {
    throw invalidArgument(`unknown dtype "${dtype}"; expected one of: ${GPU_DTYPES.join(', ')}`);
  }
}

/**
 * Throws the backend's own refusal (a ConfigError naming --kv-dtype) when it cannot
 * store pages of `kvDtype`, by making and freeing a one-page pool of that format: run
 * before the weights load, so an unsupported choice fails in a moment, not after them.
 */
export function checkKvDtype(backend: Backend, kvDtype: KvDtype | undefined): void {
  const pages = geometryKvDtype(kvDtype, '--kv-dtype');
  if (pages === undefined) return;
  const probe = { numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 128, pageSize: 16, bytesPerElement: backend.dtype === 'f32' ? 4 : 2, kvDtype: pages };
  backend.freeStorage(backend.createKvStorage('device', 1, probe));
}

/*
 * The addons are imported when a backend that needs them is asked for, never at
 * import time: a CPU-only user never loads the CUDA addon, and a user who installed
 * the engine without its optional native packages gets an error naming the package.
 */
type CpuModule = typeof import('@arkvale/cpu-backend');
type CudaModule = typeof import('@arkvale/cuda-binding');

async function importAddonPackage<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(name)) {
      throw new ArkvaleError('NO_DEVICE', `${name} is not installed (an optional dependency of @arkvale/engine); install it to use this backend`);
    }
    throw e;
  }
}

const importCpu = (): Promise<CpuModule> => importAddonPackage('@arkvale/cpu-backend', () => import('@arkvale/cpu-backend'));
const importCuda = (): Promise<CudaModule> => importAddonPackage('@arkvale/cuda-binding', () => import('@arkvale/cuda-binding'));

/**
 * The one backend factory of every entry point (generate, eval, serve, the benches),
 * in the manner of node-llama-cpp's `getLlama`: name what you want, get a ready backend
 * or an error that says why not.
 */
export async function loadBackend(options: LoadBackendOptions = {}): Promise<Backend> {
  const name = options.backend ?? 'auto';
  const warn = options.onWarning ?? ((text: string) => void process.stderr.write(text));
  checkBackendChoice(name, options.dtype);
  const backend = await pickBackend(name, warn, options.dtype as GpuDtype | undefined);
  if (options.dtype !== undefined && backend.name !== 'cuda') warn(`note: --dtype applies to the CUDA backend; the ${backend.name} backend computes in f32\n`);
  return backend;
}

async function pickBackend(name: string, warn: (text: string) => void, dtype: GpuDtype | undefined): Promise<Backend> {
  if (name === 'reference') return new ReferenceBackend();
  if (name === 'cuda' || name === 'auto') {
    const cuda = await (name === 'cuda' ? importCuda() : importCuda().catch(() => null));
    const status = cuda ? cuda.cudaStatus() : { available: false, reason: '@arkvale/cuda-binding is not installed' };
    if (cuda && status.available) return new cuda.CudaBackend({ dtype });
    if (name === 'cuda') throw new ArkvaleError('NO_DEVICE', `--backend cuda: ${status.reason}`);
    warn(`note: CUDA unavailable (${status.reason}); using the CPU backend\n`);
  }
  const cpu = await importCpu();
  const info = cpu.cpuBackendInfo();
  if (!info.native) warn(`warning: native CPU kernels unavailable (${info.reason ?? 'unknown reason'}); running the slow reference kernels\n`);
  return new cpu.CpuBackend();
}

/** The backend as summary lines name it: `cuda (NVIDIA H200, f16)`, `cpu`; with `ranks` > 1, `cpu, tensor-parallel 2`. */
export function describeBackend(b: Backend, ranks = 1): string {
  const device = (b as { deviceName?: unknown }).deviceName;
  const name = b.name === 'cuda' && typeof device === 'string' ? `cuda (${device}, ${b.dtype})` : b.name;
  return ranks > 1 ? `${name}, tensor-parallel ${ranks}` : name;
}
