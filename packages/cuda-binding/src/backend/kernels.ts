import { ArkvaleError } from '@arkvale/core';
import type { KernelLaunch } from '../generated/index.js';

/** The `arkvale codegen` option that produces each spec field. */
const CODEGEN_FLAGS: Record<string, string> = { dtype: '--dtype', headDim: '--head-dim', pageSize: '--page-size', group: '--group', variant: '--digest' };

/**
 * The error for a shape the build has no kernel for: it names the specialisation and
 * the command that adds it (the binding compiles what ARKVALE_CUDA_EXTRA asks for on
 * top of the default matrix).
 */
export function missingKernelError(family: string, spec: object): ArkvaleError {
  const fields = Object.entries(spec);
  const options = fields.filter(([k]) => CODEGEN_FLAGS[k]).map(([k, v]) => `${CODEGEN_FLAGS[k]} ${String(v)}`);
  const described = fields.map(([k, v]) => `${k} ${String(v)}`).join(', ');
  return new ArkvaleError(
    'UNSUPPORTED_MODEL',
    `no CUDA kernel ${family} for ${described} in this build of @arkvale/cuda-binding; ` +
      `add it with: ARKVALE_CUDA_EXTRA="${options.join(' ')}" pnpm --filter @arkvale/cuda-binding build`,
  );
}

/** Looks a specialisation up once per spec and remembers it; throws the missing-kernel error. */
export class KernelCache {
  private readonly found = new Map<string, KernelLaunch<object, object>>();

  get<Spec extends object, Args>(family: string, find: (spec: Spec) => KernelLaunch<Spec, Args> | undefined, spec: Spec): KernelLaunch<Spec, Args> {
    // Every launch looks its kernel up: a key built by hand is several times cheaper than JSON.stringify.
    let key = family;
    for (const k in spec) key += ` ${k}=${String(spec[k])}`;
    let k = this.found.get(key) as KernelLaunch<Spec, Args> | undefined;
    if (!k) {
      k = find(spec);
      if (!k) throw missingKernelError(family, spec);
      this.found.set(key, k as unknown as KernelLaunch<object, object>);
    }
    return k;
  }
}
