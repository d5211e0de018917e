import { ReferenceBackend, type Backend } from '@arkvale/core';
import { CpuBackend, cpuBackendInfo } from '@arkvale/cpu-backend';

/**
 * The default backend factory of the worker engine: `cpu` (native kernels, the
 * reference code when the addon is not built) or `reference`. A worker builds its own
 * backend: backends hold native state that does not cross threads.
 */
export function createBackend(name: string, warn: (text: string) => void): Backend {
  if (name === 'reference') return new ReferenceBackend();
  if (name !== 'cpu') throw new RangeError(`unknown backend "${name}"; expected cpu or reference (or give backendModule)`);
  const info = cpuBackendInfo();
  if (!info.native) warn(`warning: native CPU kernels unavailable (${info.reason ?? 'unknown reason'}); running the slow reference kernels\n`);
  return new CpuBackend();
}
