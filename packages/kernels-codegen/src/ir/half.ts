/**
 * Round-to-nearest-even conversions between float32 and the 16-bit float formats,
 * bit-exact with CUDA's `__float2half_rn` / `__float2bfloat16_rn`.
 */
import { bf16ToFloat, floatToBf16Bits, floatToHalfBits, halfToFloat } from '@arkvale/core';

export { floatToBf16Bits, floatToHalfBits };

export const halfBitsToFloat = halfToFloat;
export const bf16BitsToFloat = bf16ToFloat;

/** The value `v` takes once stored as f16. */
export const roundHalf = (v: number): number => halfToFloat(floatToHalfBits(v));
/** The value `v` takes once stored as bf16. */
export const roundBf16 = (v: number): number => bf16ToFloat(floatToBf16Bits(v));
