/** Which GPUs a build can run on, from the architectures it holds code for. */

/** The kernels need Ampere (cp.async, ldmatrix, bf16 mma) or newer. */
export const MIN_COMPUTE_CAPABILITY = { major: 8, minor: 0 } as const;

export interface ComputeCapability {
  readonly major: number;
  readonly minor: number;
}

/** 'sm_86' -> { kind: 'sass', major: 8, minor: 6 }; 'compute_90' -> PTX 9.0. */
export function parseArchLabel(label: string): { kind: 'sass' | 'ptx'; major: number; minor: number } | undefined {
  const m = /^(sm|compute)_(\d+)(\d)[a-z]?$/.exec(label);
  if (!m) return undefined;
  return { kind: m[1] === 'sm' ? 'sass' : 'ptx', major: Number(m[2]), minor: Number(m[3]) };
}

/**
 * Whether code for `archs` runs on a device: SASS for X.Y runs on X.Y' with Y' >= Y
 * (same major), PTX for X.Y on anything from X.Y up (the driver compiles it at load).
 */
export function archsRunOn(archs: readonly string[], cc: ComputeCapability): boolean {
  const device = cc.major * 10 + cc.minor;
  return archs.some((label) => {
    const a = parseArchLabel(label);
    if (!a) return false;
    if (a.kind === 'ptx') return device >= a.major * 10 + a.minor;
    return cc.major === a.major && cc.minor >= a.minor;
  });
}

export function belowMinimum(cc: ComputeCapability): boolean {
  return cc.major * 10 + cc.minor < MIN_COMPUTE_CAPABILITY.major * 10 + MIN_COMPUTE_CAPABILITY.minor;
}

/** The device to prefer: highest compute capability, then most memory, then lowest index. */
export function bestDevice<D extends ComputeCapability & { readonly totalBytes: number; readonly index: number }>(devices: readonly D[]): D | undefined {
  return [...devices].sort((a, b) => b.major * 10 + b.minor - (a.major * 10 + a.minor) || b.totalBytes - a.totalBytes || a.index - b.index)[0];
}
