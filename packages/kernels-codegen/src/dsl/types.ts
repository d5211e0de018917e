/**
 * The DSL's types, as plain TypeScript aliases so that `tsc` and editors check kernel
 * source. TypeScript sees every scalar as `number`; the translator reads the alias
 * *name* written in each annotation (f16, i32, ...) and enforces the DSL's rules
 * (no implicit narrowing, no arithmetic on 16-bit floats, integer division
 * truncates as in C) itself. Scalars live in scalars.ts with their conversions.
 */
import type { i32 } from './scalars.js';

/** A pointer to device (global) memory that the kernel reads and writes. */
export interface Global<T> {
  [index: number]: T;
}

/**
 * A read-only pointer to device memory, emitted as `const T* __restrict__`: it
 * promises that no other parameter writes the same memory during the launch.
 */
export interface GlobalIn<T> {
  readonly [index: number]: T;
}

/** A block-shared array from `shared<T>(n)`. */
export interface Shared<T> {
  [index: number]: T;
}

/** A per-thread register array from `local<T>(n)`. */
export interface Local<T> {
  [index: number]: T;
}

/** Any pointer or array an intrinsic may read. */
export type Readable<T> = Global<T> | GlobalIn<T> | Shared<T> | Local<T>;
/** Any pointer or array an intrinsic may write. */
export type Writable<T> = Global<T> | Shared<T> | Local<T>;

/** threadIdx, blockIdx, blockDim, gridDim: the components are `i32` in the DSL. */
export interface Dim3 {
  readonly x: i32;
  readonly y: i32;
  readonly z: i32;
}
