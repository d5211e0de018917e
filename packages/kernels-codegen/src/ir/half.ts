/**
 * Round-to-nearest-even conversions between float32 and the 16-bit float formats,
 * bit-exact with CUDA's `__float2half_rn` / `__float2bfloat16_rn`.
 */
import { bf16ToFloat, halfToFloat } from '@arkvale/core';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): value = mant24 * 2^(e - 14 - 10).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

export function floatToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export const halfBitsToFloat = halfToFloat;
export const bf16BitsToFloat = bf16ToFloat;

/** The value `v` takes once stored as f16. */
export const roundHalf = (v: number): number => halfToFloat(floatToHalfBits(v));
/** The value `v` takes once stored as bf16. */
export const roundBf16 = (v: number): number => bf16ToFloat(floatToBf16Bits(v));
