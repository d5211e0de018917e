export { CpuBackend } from './cpu-backend.js';
export type { CpuBackendOptions } from './cpu-backend.js';
export { cpuBackendInfo, createCpuBackend } from './info.js';
export type { CpuBackendInfo } from './info.js';
