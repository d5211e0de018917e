export declare const DEFAULT_KERNELS_FILE: string;
export declare function defaultKernelNames(defs?: readonly unknown[]): string[];
export declare function mergedSpecs(outDir: string, defs?: readonly unknown[], warn?: (line: string) => void): Map<string, object[]>;
export declare function withExtraSpecs<D>(defs: readonly D[], extras: Map<string, object[]>): D[];
export declare function mirrorFolder(from: string, to: string): number;
export declare const BUNDLES_DIR: string;
export declare function writeBundles(outDir: string, count: number): number;
export declare function generateKernels(options: {
  readonly packageDir: string;
  readonly extraArgs?: readonly string[];
  readonly log?: (line: string) => void;
  /** Kernel definitions to generate (default: the whole library). */
  readonly kernels?: readonly unknown[];
  /** How many nvcc bundles to write (default: two per core). */
  readonly bundles?: number;
}): Promise<number>;
