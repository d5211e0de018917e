/**
 * The DSL's built-in values and functions. Kernel modules import them so that `tsc`
 * type-checks kernel source, and the translator recognises them by name (only when
 * imported from this module). They exist at run time only so that importing a kernel
 * module (for its definition) links; calling one outside the translator or the
 * emulator is a mistake and throws.
 */
import type { Float16, bool, f32, i32, u32, u8 } from './scalars.js';
import { translatorOnly } from './translator-only.js';
import type { Dim3, Global, Local, Readable, Shared, Writable } from './types.js';

const dim3 = (name: string): Dim3 =>
  new Proxy({} as Dim3, {
    get: () => translatorOnly(name),
  });

// --- indices ---------------------------------------------------------------
export const threadIdx: Dim3 = dim3('threadIdx');
export const blockIdx: Dim3 = dim3('blockIdx');
export const blockDim: Dim3 = dim3('blockDim');
export const gridDim: Dim3 = dim3('gridDim');
/** Threads per warp, a compile-time constant. */
export const WARP_SIZE = 32;

// --- bit casts ---------------------------------------------------------------------------
/** The bits of an f32 (`__float_as_uint`). */
export function floatBits(_x: f32): u32 {
  return translatorOnly('floatBits');
}
/** The f32 with these bits (`__uint_as_float`). */
export function bitsToFloat(_x: u32): f32 {
  return translatorOnly('bitsToFloat');
}

// --- math beyond Math.* ------------------------------------------------------------
export function rsqrt(_x: f32): f32 {
  return translatorOnly('rsqrt');
}
export function exp2(_x: f32): f32 {
  return translatorOnly('exp2');
}
/**
 * 2^x by the special-function unit alone (ex2.approx.ftz): results below 2^-126 are 0.
 * For softmax weights, where such values count for nothing; saves exp2's denormal handling.
 */
export function exp2Ftz(_x: f32): f32 {
  return translatorOnly('exp2Ftz');
}
export function fma(_a: f32, _b: f32, _c: f32): f32 {
  return translatorOnly('fma');
}
/** Number of set bits (`__popc`). */
export function popc(_x: u32): i32 {
  return translatorOnly('popc');
}
// --- fp8 (OCP e4m3, as fp8 KV pages store K and V) ---------------------------------------
/**
 * The e4m3 code of `x`: round to nearest even, saturating to +-448, NaN to 0x7f
 * (`__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)`; emulated by core's
 * `floatToE4m3Bits`, bit-exact).
 */
export function encodeE4m3(_x: f32): u8 {
  return translatorOnly('encodeE4m3');
}
/** The value of an e4m3 code (exact in f32; 0x7f and 0xff are NaN), as core's `e4m3ToFloat`. */
export function decodeE4m3(_code: u8): f32 {
  return translatorOnly('decodeE4m3');
}
/** f32 infinity (`Infinity` is also accepted). */
export const INF: f32 = Number.POSITIVE_INFINITY;

// --- memory ----------------------------------------------------------------------
/** A block-shared array of compile-time length; only at the top level of a kernel. */
export function shared<T>(_length: number): Shared<T> {
  return translatorOnly('shared');
}
/** A per-thread register array of compile-time length. */
export function local<T>(_length: number): Local<T> {
  return translatorOnly('local');
}
/** `p + n` as a pointer, for passing part of a buffer to a helper function. */
export function offset<P>(_p: P, _n: number): P {
  return translatorOnly('offset');
}
/**
 * Vector load: copies `dst`'s whole length (4, 8 or 16 bytes) from `src[index ..]`
 * in one instruction. The source address must be aligned to that size.
 */
export function vload<T>(_dst: Local<T>, _src: Readable<T>, _index: number): void {
  return translatorOnly('vload');
}
/** Vector store of `src`'s whole length (4, 8 or 16 bytes) to `dst[index ..]`, aligned. */
export function vstore<T>(_dst: Writable<T>, _index: number, _src: Local<T>): void {
  return translatorOnly('vstore');
}

// --- synchronisation -------------------------------------------------------------------
/** `__syncthreads()`: every thread of the block waits here. */
export function syncthreads(): void {
  return translatorOnly('syncthreads');
}
/** `__syncwarp()`. */
export function syncwarp(): void {
  return translatorOnly('syncwarp');
}
/**
 * `__threadfence()`: this thread's global writes before it are seen by every thread of
 * the grid before any of its writes after it (a block that counts itself done with an
 * atomic after the fence has its results visible to whoever reads the count).
 */
export function threadfence(): void {
  return translatorOnly('threadfence');
}
/**
 * `__ldcg(&p[i])`: a global load cached in L2 only. A block that reads what other blocks
 * of its launch wrote (after their fence and count) must not find an older copy of the
 * line in its SM's L1, which is not kept coherent with other SMs' writes.
 */
export function ldcg<T extends number>(_p: Global<T>, _index: number): T {
  return translatorOnly('ldcg');
}

// --- warp collectives (all 32 lanes take part) -----------------------------------------
export function shflXor<T extends number>(_v: T, _laneMask: number, _width?: number): T {
  return translatorOnly('shflXor');
}
export function shflDown<T extends number>(_v: T, _delta: number, _width?: number): T {
  return translatorOnly('shflDown');
}
export function shflUp<T extends number>(_v: T, _delta: number, _width?: number): T {
  return translatorOnly('shflUp');
}
export function shflIdx<T extends number>(_v: T, _srcLane: number, _width?: number): T {
  return translatorOnly('shflIdx');
}
export function ballot(_predicate: bool): u32 {
  return translatorOnly('ballot');
}
export function warpAny(_predicate: bool): bool {
  return translatorOnly('warpAny');
}
export function warpAll(_predicate: bool): bool {
  return translatorOnly('warpAll');
}

// --- atomics (return the old value) -------------------------------------------------------------
export function atomicAdd<T extends number>(_p: Global<T> | Shared<T>, _index: number, _v: T): T {
  return translatorOnly('atomicAdd');
}
export function atomicMax<T extends number>(_p: Global<T> | Shared<T>, _index: number, _v: T): T {
  return translatorOnly('atomicMax');
}
export function atomicMin<T extends number>(_p: Global<T> | Shared<T>, _index: number, _v: T): T {
  return translatorOnly('atomicMin');
}
export function atomicExch<T extends number>(_p: Global<T> | Shared<T>, _index: number, _v: T): T {
  return translatorOnly('atomicExch');
}
export function atomicCAS<T extends number>(_p: Global<T> | Shared<T>, _index: number, _compare: T, _v: T): T {
  return translatorOnly('atomicCAS');
}

// --- asynchronous copies (sm_80+) --------------------------------------------------------
/** `cp.async` of 16 bytes from global to shared memory; both addresses 16-byte aligned. */
export function cpAsync16<T>(_dst: Shared<T>, _dstIndex: number, _src: Readable<T>, _srcIndex: number): void {
  return translatorOnly('cpAsync16');
}
/** `cp.async` of 8 bytes (`.ca`); both addresses 8-byte aligned. */
export function cpAsync8<T>(_dst: Shared<T>, _dstIndex: number, _src: Readable<T>, _srcIndex: number): void {
  return translatorOnly('cpAsync8');
}
/** `cp.async` of 4 bytes (`.ca`); both addresses 4-byte aligned. */
export function cpAsync4<T>(_dst: Shared<T>, _dstIndex: number, _src: Readable<T>, _srcIndex: number): void {
  return translatorOnly('cpAsync4');
}
/** Closes the current group of `cp.async` copies. */
export function cpAsyncCommit(): void {
  return translatorOnly('cpAsyncCommit');
}
/** Waits until at most `groups` (a compile-time constant) committed groups are pending. */
export function cpAsyncWait(_groups: number): void {
  return translatorOnly('cpAsyncWait');
}

// --- tensor cores (sm_80+, f16/bf16 inputs, f32 accumulators) ------------------------------------------
/**
 * `ldmatrix.sync.aligned.m8n8.x4.shared.b16`: lane l passes the address of row l % 8
 * of matrix l / 8; `dst` (8 elements) receives the lane's fragment of the 4 matrices.
 */
export function ldmatrixX4<T extends Float16>(_dst: Local<T>, _src: Shared<T>, _index: number): void {
  return translatorOnly('ldmatrixX4');
}
/** As ldmatrixX4 with `.trans` (each 8x8 matrix transposed). */
export function ldmatrixX4Trans<T extends Float16>(_dst: Local<T>, _src: Shared<T>, _index: number): void {
  return translatorOnly('ldmatrixX4Trans');
}
/**
 * `mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}`: d = a * b + c with a (8
 * elements), b (4 elements) and c, d (4 f32) in the PTX fragment layouts.
 */
export function mmaM16N8K16<T extends Float16>(_d: Local<f32>, _a: Local<T>, _b: Local<T>, _c: Local<f32>): void {
  return translatorOnly('mmaM16N8K16');
}
