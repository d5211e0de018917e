/**
 * A kernel of the library: the DSL function plus what the generator needs to
 * specialise and launch it. The translator reads the function's body from the
 * module's TypeScript source (`source: import.meta.url`).
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScalarName } from '../ir/types.js';
import type { Grid } from './geometry.js';
import type { Matrix } from './matrix.js';

/**
 * `S` is the kernel's spec type: an object of numbers, booleans and strings (nested
 * objects allowed) whose fields the translator folds to constants.
 */
// biome-ignore lint/suspicious/noExplicitAny: a definition of any specialisation shape, narrowed where it is defined
export interface KernelDefinition<S extends object = any> {
  /** C name prefix of the family (`paged_decode`); specialisation names start with it. */
  readonly family: string;
  /** One line for the manifest and the launch surface's doc comments. */
  readonly summary: string;
  /** `import.meta.url` of the module that declares the kernel function. */
  readonly source: string;
  /** The DSL kernel function (its first parameter is the spec). */
  readonly kernel: (spec: S, ...args: never[]) => void;
  /** The specialisation's readable C name: parameters in the name, e.g. `paged_decode_f16_hd128_ps32_g4`. */
  readonly name: (spec: S) => string;
  /** Scalar types bound to the kernel function's type parameters. */
  readonly types?: (spec: S) => Readonly<Record<string, ScalarName>>;
  /** Threads per block (1-D blocks; also the kernel's __launch_bounds__). */
  readonly blockThreads: (spec: S) => number;
  /** Launch grid over the runtime arguments. */
  readonly grid: (spec: S) => Grid;
  /** The specialisations a matrix asks for. */
  readonly specs: (matrix: Matrix) => readonly S[];
  /** Why a spec cannot be generated (e.g. a head dim not divisible by the vector width), or undefined. */
  readonly validate?: (spec: S) => string | undefined;
  /** The spec field naming the element type; one nvcc unit per (family, this value). */
  readonly unitKey?: (spec: S) => string;
}

export function defineKernel<S extends object>(def: KernelDefinition<S>): KernelDefinition<S> {
  return def;
}

/**
 * The TypeScript source of a kernel module: the module itself under vitest/tsx, or the
 * shipped `src/` twin of a compiled `dist/` module.
 */
export function kernelSourcePath(def: Pick<KernelDefinition, 'source'>): string {
  const file = def.source.startsWith('file:') ? fileURLToPath(def.source) : def.source;
  if (file.endsWith('.ts')) return file;
  const parts = file.split(path.sep);
  const dist = parts.lastIndexOf('dist');
  if (dist < 0) throw new Error(`cannot locate the TypeScript source of ${file}`);
  parts[dist] = 'src';
  return parts.join(path.sep).replace(/\.js$/, '.ts');
}

/** The kernel function's name (what the translator looks up in the source). */
export const kernelFunctionName = (def: Pick<KernelDefinition, 'kernel'>): string => def.kernel.name;
