/**
 * Scalar types and their conversion functions share a name (a type alias and a
 * function live in different TypeScript namespaces), so `f32(x)` converts to the
 * type `f32`. TypeScript sees every scalar as `number`; the translator reads the
 * alias name of each annotation.
 */
import { translatorOnly } from './translator-only.js';

/** IEEE binary16: a storage type. Convert with `f32(x)` before arithmetic. */
export type f16 = number;
/** bfloat16: a storage type. Convert with `f32(x)` before arithmetic. */
export type bf16 = number;
/** IEEE binary32, the arithmetic type of every kernel. */
export type f32 = number;
/** 32-bit signed integer (C `int`): `/` truncates toward zero, overflow wraps. */
export type i32 = number;
/** 32-bit unsigned integer (C `unsigned int`). */
export type u32 = number;
/** 64-bit signed integer (C `long long`), for offsets into pools larger than 2^31 elements. */
export type i64 = number;
/**
 * A byte (C `unsigned char`): a storage type, like f16. Convert with `u32(x)` or
 * `i32(x)` before arithmetic; `u8(x)` keeps an integer's low 8 bits.
 */
export type u8 = number;
/** C `bool`. Conditions must be `bool`: write `x !== 0`, not `x`. */
export type bool = boolean;

/** The 16-bit float storage types a kernel can be specialised on. */
export type Float16 = f16 | bf16;

// Conversions are explicit: the only way to narrow, change signedness or leave f16/bf16.
export function f32(_x: number): f32 {
  return translatorOnly('f32');
}
export function f16(_x: number): f16 {
  return translatorOnly('f16');
}
export function bf16(_x: number): bf16 {
  return translatorOnly('bf16');
}
export function i32(_x: number): i32 {
  return translatorOnly('i32');
}
export function u32(_x: number): u32 {
  return translatorOnly('u32');
}
export function i64(_x: number): i64 {
  return translatorOnly('i64');
}
export function u8(_x: number): u8 {
  return translatorOnly('u8');
}
/** Converts to the type argument, e.g. `convert<T>(acc)` in a kernel generic over T. */
export function convert<T>(_x: number): T {
  return translatorOnly('convert');
}
