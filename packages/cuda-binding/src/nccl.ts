import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { CudaAddon, NcclStatus } from './native.js';

/**
 * NCCL for tensor parallelism is loaded at run time, as cuBLAS is: from ARKVALE_NCCL,
 * else from the `nvidia-nccl` Python wheel (where the GPU machines have it), else from
 * the library path. The communicator over it is `NcclCommunicator`
 * (backend/nccl-communicator.ts; docs/DESIGN.md, tensor parallelism).
 */

/** The nvidia-nccl wheel's lib/libnccl.so.2 as `python` imports it, or undefined (no Python, no wheel, no file). */
export function ncclWheelLibrary(python = 'python3'): string | undefined {
  const script = 'import os, nvidia.nccl as m; print(os.path.join(list(m.__path__)[0], "lib", "libnccl.so.2"))';
  const r = spawnSync(python, ['-c', script], { encoding: 'utf8', timeout: 10_000 });
  const path = r.status === 0 ? r.stdout.trim() : '';
  return path && existsSync(path) ? path : undefined;
}

/** Whether NCCL loads for this addon, and from where; never throws. */
export function ncclStatus(addon: CudaAddon, wheelLibrary: string | undefined = process.env.ARKVALE_NCCL ? undefined : ncclWheelLibrary()): NcclStatus {
  if (!addon.ncclStatus) return { loaded: false, reason: 'this build of the addon cannot load NCCL (rebuild @arkvale/cuda-binding)' };
  return addon.ncclStatus(wheelLibrary);
}
