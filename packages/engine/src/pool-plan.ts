import { totalmem } from 'node:os';
import { pageBytes, type Backend, type KvDtype } from '@arkvale/core';
import { prefillsOneShot, type ResolvedEngineConfig } from './config.js';
import type { ServedModel } from './served-model.js';

/** The KV pools an engine runs with, and how they were chosen. */
export interface PoolPlan {
  readonly devicePages: number;
  readonly hostPages: number;
  /** One line for the start-up log: sizes, bytes, and where each came from. */
  readonly summary: string;
}

/** The most of the machine's memory a host pool takes when none is given (pinned memory on a GPU). */
export const HOST_MEMORY_SHARE = 0.5;
/** The device pool of a backend without memory of its own (the CPU's pages live in the process). */
export const CPU_DEVICE_PAGES = 4096;

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/**
 * The pools from the hardware where they are not given. On a GPU, the device pool is
 * every KV page the memory share leaves beside the weights, the activations of the
 * largest pass (`passRows`: a step's tokens, or a whole prompt where prompts are
 * prefilled in one pass) and the digests of every page, device and host (as vLLM plans
 * its blocks); on the CPU, 4096. The host pool is four times the device pool, on a GPU
 * at most half the machine's memory. A given device pool larger than the card can hold
 * is refused with the numbers.
 */
export function planPools(
  model: ServedModel,
  pages: { readonly pageSize: number; readonly kvDtype?: KvDtype },
  passRows: number,
  given: { readonly devicePages?: number; readonly hostPages?: number },
  gpuMemoryUtilization: number,
  machineBytes = totalmem(),
): PoolPlan {
  const { pageSize, kvDtype } = pages;
  const bytes = pageBytes(model.geometry(pageSize, kvDtype));
  // Four times the device pool (backups of what it evicts, parked sequences), within a share of the machine: pinned memory is slow to allocate and scarce.
  const hostCap = Math.floor((HOST_MEMORY_SHARE * machineBytes) / bytes);
  const hostPagesFor = (devicePages: number) => given.hostPages ?? Math.min(4 * devicePages, hostCap);
  const capacity = model.devicePageCapacity(pageSize, passRows, hostPagesFor, kvDtype);
  if (capacity !== undefined && given.devicePages !== undefined && given.devicePages > capacity) {
    throw new Error(
      `a device pool of ${given.devicePages} pages does not fit: ${capacity} pages of ${pageSize} tokens fit within --gpu-memory-utilization ${gpuMemoryUtilization}; lower --device-pages`,
    );
  }
  if (capacity !== undefined && capacity < 1)
    throw new Error(`no KV page fits on the device beside the weights within --gpu-memory-utilization ${gpuMemoryUtilization}`);
  const devicePages = given.devicePages ?? capacity ?? CPU_DEVICE_PAGES;
  const hostPages = capacity !== undefined ? hostPagesFor(devicePages) : (given.hostPages ?? 4 * devicePages);
  const deviceFrom =
    given.devicePages !== undefined ? 'given' : capacity !== undefined ? `what --gpu-memory-utilization ${gpuMemoryUtilization} leaves` : 'the CPU default';
  const hostFrom =
    given.hostPages !== undefined
      ? 'given'
      : hostPages < 4 * devicePages
        ? `${HOST_MEMORY_SHARE * 100}% of this machine's ${gib(machineBytes)}`
        : '4x the device pool';
  return {
    devicePages,
    hostPages,
    summary: `KV pools${kvDtype === 'fp8' ? ' (fp8 pages)' : ''}: ${devicePages} device pages (${gib(devicePages * bytes)}, ${deviceFrom}), ${hostPages} host pages (${gib(hostPages * bytes)}, ${hostFrom})`,
  };
}

/** The rows of an engine's largest pass: a whole prompt (up to the model's positions) where prompts are prefilled in one pass, else a step's tokens. */
export function largestPassRows(config: Pick<ResolvedEngineConfig, 'prefill' | 'stepTokens'>, model: ServedModel, backend: Backend): number {
  return prefillsOneShot(config, backend) ? Math.max(config.stepTokens, model.forward.maxPositions) : config.stepTokens;
}
