/**
 * The manifest: every generated specialisation with its parameters, launch geometry,
 * shared memory and files. A CUDA binding reads it (or the TypeScript launch surface
 * generated from it) to load and launch kernels; nothing in it depends on the machine
 * or the time of generation, so it changes only when a kernel does.
 */
import type { SpecObject } from '../translate/context.js';
import type { Grid } from '../spec/geometry.js';
import type { ParamSlot } from '../spec/params.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_VERSION = 1;

export interface ManifestKernel {
  readonly family: string;
  /** Readable specialisation name; also the `extern "C"` symbol. */
  readonly name: string;
  readonly summary: string;
  readonly spec: SpecObject;
  /** The DSL source it was generated from, relative to its package. */
  readonly kernelSource: string;
  readonly files: {
    /** The kernel (and its helpers) in a namespace of its own. */
    readonly header: string;
    /** A translation unit for this specialisation alone. */
    readonly source: string;
    /** A translation unit shared with the other specialisations of its family and dtype. */
    readonly unit: string;
  };
  readonly block: readonly [number, number, number];
  readonly grid: Grid;
  /** The grid as text, e.g. ["batch * numKvHeads", "numSplits", "1"]. */
  readonly gridText: readonly [string, string, string];
  readonly staticSharedBytes: number;
  /** Shared memory the launch asks for (kernels over 48 KB; shared-placement.ts), else 0. */
  readonly dynamicSharedBytes: number;
  readonly params: readonly ParamSlot[];
  readonly paramBytes: number;
}

export interface ManifestUnit {
  readonly file: string;
  readonly kernels: readonly string[];
}

export interface Manifest {
  readonly version: number;
  readonly generator: string;
  /** Include directory layout: headers and per-kernel sources in `cuda/`, shared units in `cuda-units/`. */
  readonly prelude: string;
  readonly kernels: readonly ManifestKernel[];
  readonly units: readonly ManifestUnit[];
}

export function manifestJson(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

export function parseManifest(text: string): Manifest {
  const m = JSON.parse(text) as Manifest;
  if (m.version !== MANIFEST_VERSION || !Array.isArray(m.kernels)) throw new Error(`not an arkvale-codegen manifest (version ${MANIFEST_VERSION})`);
  // Manifests written before dynamic shared memory had none.
  return { ...m, kernels: m.kernels.map((k) => ({ ...k, dynamicSharedBytes: k.dynamicSharedBytes ?? 0 })) };
}
