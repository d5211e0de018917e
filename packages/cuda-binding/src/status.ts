/**
 * Whether CUDA is usable here, and if not, why, in one sentence a user can act
 * on. `arkvale inspect gpu`, the backend choice (`--backend auto`) and the pack
 * check print `summary` / `reason` as they are.
 */
import { ArkvaleError } from '@arkvale/core';
import { archsRunOn, belowMinimum, bestDevice, MIN_COMPUTE_CAPABILITY } from './arch.js';
import { cudaVersion, formatBytes } from './format.js';
import { allKernels } from './generated/index.js';
import { loadAddon, type AddonLoad } from './load.js';
import type { BlasStatus, CudaAddon, DeviceInfo } from './native.js';

export interface KernelFamilyStatus {
  readonly family: string;
  readonly count: number;
  readonly names: readonly string[];
}

export interface CudaStatus {
  /** True when the addon loads, a supported device exists, the build has code for it and cuBLAS loads. */
  readonly available: boolean;
  /** Why CUDA is not available ('' when it is). */
  readonly reason: string;
  /** One line either way: "CUDA available: NVIDIA H200 (...)" or "CUDA unavailable: <reason>". */
  readonly summary: string;
  readonly addon: {
    /** The last build produced an addon (or, without build/status.json, one loaded). */
    readonly built: boolean;
    readonly loaded: boolean;
    readonly path: string;
    /** Architectures the binary holds code for ('sm_90', ..., PTX as 'compute_90'). */
    readonly archs: readonly string[];
    readonly nvcc?: string;
    readonly reason?: string;
  };
  /** CUDA version the driver supports (13000 = 13.0); 0 without a driver or addon. */
  readonly driverVersion: number;
  readonly runtimeVersion: number;
  readonly driverRelease?: string;
  readonly devices: readonly DeviceInfo[];
  /** The device the backend would use: highest compute capability, then most memory. */
  readonly device?: DeviceInfo;
  /** Probed only when a device exists (loading cuBLAS without one tells nothing). */
  readonly cublas?: BlasStatus;
  readonly kernels: { readonly total: number; readonly families: readonly KernelFamilyStatus[] };
}

export interface CudaStatusOptions {
  /** The addon to load (default: $ARKVALE_CUDA_ADDON, then the package's build). */
  readonly addonPath?: string;
}

const FAMILY_OF = new Map<string, string>(allKernels.map((k) => [k.name, k.family]));

function kernelFamilies(addon: CudaAddon): CudaStatus['kernels'] {
  const byFamily = new Map<string, string[]>();
  const entries = addon.kernels();
  for (const k of entries) {
    // A name the launch surface lacks means dist/ and the addon come from different builds.
    const family = FAMILY_OF.get(k.name) ?? 'unknown (rebuild: the addon and dist/ differ)';
    byFamily.set(family, [...(byFamily.get(family) ?? []), k.name]);
  }
  const families = [...byFamily].sort(([a], [b]) => a.localeCompare(b)).map(([family, names]) => ({ family, count: names.length, names }));
  return { total: entries.length, families };
}

function describeDevice(d: DeviceInfo): string {
  return `${d.name} (device ${d.index}, compute capability ${d.major}.${d.minor}, ${formatBytes(d.totalBytes)}, ${d.multiprocessors} SMs)`;
}

/** Why `device` cannot run this build, or undefined. */
function deviceProblem(device: DeviceInfo, archs: readonly string[]): string | undefined {
  const { major, minor } = MIN_COMPUTE_CAPABILITY;
  if (belowMinimum(device)) {
    return `compute capability ${device.major}.${device.minor} is below the supported ${major}.${minor} (${device.name}, device ${device.index})`;
  }
  if (archs.length > 0 && !archsRunOn(archs, device)) {
    const arch = `${device.major}${device.minor}`;
    return (
      `the addon has no code for compute capability ${device.major}.${device.minor} (${device.name}); it was built for ` +
      `${archs.join(', ')}: rebuild with ARKVALE_CUDA_ARCHS=${arch} (or unset it for the default set)`
    );
  }
  return undefined;
}

function unavailable(load: AddonLoad, reason: string, extra: Partial<CudaStatus> = {}): CudaStatus {
  return {
    available: false,
    reason,
    summary: `CUDA unavailable: ${reason}`,
    addon: {
      built: load.buildStatus?.built ?? load.addon !== undefined,
      loaded: load.addon !== undefined,
      path: load.path,
      archs: load.buildStatus?.archs ?? [],
      nvcc: load.buildStatus?.nvcc,
      reason: load.reason,
    },
    driverVersion: 0,
    runtimeVersion: 0,
    devices: [],
    kernels: { total: 0, families: [] },
    ...extra,
  };
}

function statusWithAddon(load: AddonLoad, addon: CudaAddon): CudaStatus {
  const build = addon.buildInfo();
  const probe = addon.probe();
  const archs = build.archs.length > 0 ? build.archs : (load.buildStatus?.archs ?? []);
  const device = bestDevice(probe.devices);
  const base: Partial<CudaStatus> = {
    addon: { built: true, loaded: true, path: load.path, archs, nvcc: build.nvcc || load.buildStatus?.nvcc },
    driverVersion: probe.driverVersion,
    runtimeVersion: probe.runtimeVersion,
    driverRelease: probe.driverRelease,
    devices: probe.devices,
    device,
    kernels: kernelFamilies(addon),
  };
  if (!probe.ok || !device) return unavailable(load, probe.reason ?? 'no CUDA device', base);
  const problem = deviceProblem(device, archs);
  if (problem) return unavailable(load, problem, base);
  const cublas = addon.blasStatus();
  if (!cublas.loaded) return unavailable(load, `cuBLAS is not available: ${cublas.reason ?? 'unknown reason'}`, { ...base, cublas });
  const cuda = `driver CUDA ${cudaVersion(probe.driverVersion)}, runtime ${cudaVersion(probe.runtimeVersion)}`;
  return {
    ...(base as CudaStatus),
    available: true,
    reason: '',
    summary: `CUDA available: ${describeDevice(device)}; ${cuda}; ${cublas.library}`,
    cublas,
  };
}

/** The CUDA state of this machine and build. Never throws. */
export function cudaStatus(options: CudaStatusOptions = {}): CudaStatus {
  const load = loadAddon(options.addonPath);
  if (!load.addon) return unavailable(load, load.reason ?? 'addon not loaded');
  try {
    return statusWithAddon(load, load.addon);
  } catch (err) {
    return unavailable(load, `the CUDA status check failed: ${(err as Error).message}`);
  }
}

/**
 * The addon, when CUDA is usable; otherwise an ArkvaleError('NO_DEVICE') whose
 * message is the status's reason.
 */
export function loadCudaAddon(options: CudaStatusOptions = {}): CudaAddon {
  const status = cudaStatus(options);
  const { addon } = loadAddon(options.addonPath);
  if (!status.available || !addon) throw new ArkvaleError('NO_DEVICE', `CUDA is not available: ${status.reason}`);
  return addon;
}
