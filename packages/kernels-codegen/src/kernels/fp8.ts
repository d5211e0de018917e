/**
 * fp8 KV pages (`KvGeometry.kvDtype === 'fp8'`, core's kv-fp8.ts) as the fp8 kernel
 * families read and write them. A page slot of `fp8PageBytes` holds the e4m3 codes
 * [K|V][kvHead][token][dim], one byte each, then at `fp8ScaleBase` one scale byte per
 * [K|V][kvHead][token] (s stands for 2^(s - 127)), the slot padded to 16 bytes: core's
 * `fp8ScaleOffset` and `pageBytes`. A value is e4m3(code) * 2^(s - 127); both factors
 * are exact in f32, so dequantizing is exact wherever it happens.
 */
import { bitsToFloat, i32, u32, type f32, type u8 } from '../dsl/index.js';
import type { PagedSpec } from './layout.js';

/** Byte offset of the scale bytes in a slot: after the 2 * kvHeads * pageSize * headDim codes (a multiple of 16). */
export function fp8ScaleBase(spec: PagedSpec, numKvHeads: i32): i32 {
  return 2 * numKvHeads * spec.pageSize * spec.headDim;
}

/** Bytes of one fp8 page slot: codes, then the 2 * kvHeads * pageSize scale bytes rounded up to 16. */
export function fp8PageBytes(spec: PagedSpec, numKvHeads: i32): i32 {
  return 2 * numKvHeads * spec.pageSize * spec.headDim + ((2 * numKvHeads * spec.pageSize + 15) / 16) * 16;
}

/** The factor 2^(s - 127) of a scale byte (the 1..254 appends write; exact in f32). */
export function fp8Factor(s: u8): f32 {
  return bitsToFloat(u32(s) << 23);
}

/**
 * The scale byte of a row whose largest magnitude has the f32 bits `a` (sign cleared),
 * as core's e4m3ScaleByte: the row is stored as codes of x * 2^(127 - s), its largest
 * magnitude mapped into (224, 448]; 127 (factor 1) for a zero, subnormal, infinite or
 * NaN maximum.
 */
export function fp8ScaleByte(a: u32): u32 {
  if (a < 0x00800000 || a >= 0x7f800000) return 127;
  // amax = 1.m * 2^E; 2^8 * 1.m when 1.m <= 1.75, else 2^7 * 1.m, lands in (224, 448].
  const e = i32(a >> 23) - 127 - ((a & 0x7fffff) <= 0x600000 ? 8 : 7);
  return u32(Math.min(254, Math.max(1, e + 127)));
}

/** 2^(127 - s): what a row's values are multiplied by before encoding (exact for the bytes fp8ScaleByte gives). */
export function fp8InverseFactor(s: u32): f32 {
  return bitsToFloat((254 - s) << 23);
}
