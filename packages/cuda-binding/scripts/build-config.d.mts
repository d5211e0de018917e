export declare const DEFAULT_ARCHS: readonly number[];
export declare const MIN_ARCH: number;
export declare const FALLBACK_NVCC: string;
export interface NvccCandidate {
  readonly path: string;
  readonly source: 'CUDACXX' | 'PATH' | 'default';
}
export declare function parseArchs(value: string | undefined): number[];
export declare function gencodeFlags(archs: readonly number[]): string[];
export declare function bundleUnits(units: readonly { readonly name: string; readonly cost: number }[], count: number): string[][];
export declare function bundleCount(cores: number): number;
export declare function archLabels(archs: readonly number[]): string[];
export declare function nvccCandidates(env: Readonly<Record<string, string | undefined>>): NvccCandidate[];
export declare function isExecutable(file: string): boolean;
export declare function findNvcc(env: Readonly<Record<string, string | undefined>>, executable?: (file: string) => boolean): NvccCandidate | undefined;
export declare function parseNvccVersion(output: string): string | undefined;
export declare function parseExtraArgs(value: string | undefined): string[];
