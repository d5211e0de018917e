/**
 * @arkvale/cuda-binding: the CUDA runtime for ArkVale (device and pinned memory,
 * streams, events, copies, cuBLAS, graphs and the generated kernels) and the
 * status that says whether it is usable here.
 */
export { STREAM } from './native.js';
export type {
  AllocatorStats,
  BlasStatus,
  NcclStatus,
  BuildInfo,
  CudaAddon,
  DeviceInfo,
  GemmParams,
  GemmType,
  KernelEntry,
  MemInfo,
  PinnedBlock,
  ProbeResult,
} from './native.js';
export { cudaStatus, loadCudaAddon } from './status.js';
export { ncclStatus, ncclWheelLibrary } from './nccl.js';
export { NcclCommunicator, ncclUniqueId } from './backend/nccl-communicator.js';
export type { CudaStatus, CudaStatusOptions, KernelFamilyStatus } from './status.js';
export { ADDON_ENV, BUILD_HINT, loadAddon } from './load.js';
export type { AddonLoad, BuildStatusFile } from './load.js';
export { archsRunOn, bestDevice, MIN_COMPUTE_CAPABILITY, parseArchLabel } from './arch.js';
export type { ComputeCapability } from './arch.js';
export { cudaVersion, formatBytes } from './format.js';
export { CudaBackend } from './backend/cuda-backend.js';
export { type IdleAddonOptions, type IdleDevice, idleCudaAddon } from './idle-addon.js';
export type { CudaBackendOptions } from './backend/cuda-backend.js';
export { CudaTensor } from './backend/tensor.js';
export { CudaKvStorage, CudaDigestStorage } from './backend/kv-ops.js';
export { missingKernelError } from './backend/kernels.js';
