/**
 * The e4m3 (OCP FP8 E4M3FN: 1 sign, 4 exponent bits of bias 7, 3 mantissa bits, no
 * infinities, NaN = S.1111.111, largest finite 448) codec of fp8 KV pages, and their
 * per-token power-of-two scales. Every backend rounds with this code or a bit-exact copy
 * of it: `floatToE4m3Bits` equals CUDA's `__nv_cvt_float_to_fp8(x, __NV_SATFINITE,
 * __NV_E4M3)` on all 2^32 float32 inputs (checked exhaustively against the software
 * path of cuda_fp8.hpp and the sm_90 hardware conversion).
 *
 * A row of `headDim` values (one token's K or V of one KV head) is stored as a scale
 * byte s and `headDim` codes c: value = e4m3(c) * 2^(s - 127). The scale is chosen from
 * the row's largest magnitude so that it maps into (224, 448] (nothing saturates), and
 * both directions are exact multiplications by a power of two, so the only rounding is
 * the one to 3 mantissa bits, the same on every backend.
 */

const f = new Float32Array(1);
const u = new Uint32Array(f.buffer);

/** The largest finite e4m3 value. */
export const E4M3_MAX = 448;

/** The e4m3 code of the float32 bits `x` (round to nearest, ties to even; saturating). */
function e4m3OfBits(x: number): number {
  const sign = (x >>> 24) & 0x80;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) return 0x7f; // NaN: the canonical NaN, sign dropped (as CUDA)
  if (a > 0x43e80000) return sign | 0x7e; // beyond 464 (448 + half an ulp), or infinite: +-448
  if (a <= 0x3a800000) return sign; // at most 2^-10 (half the smallest subnormal, a tie to even 0): +-0
  const exp = (a >>> 23) - 120; // e4m3's biased exponent
  if (exp >= 1) {
    // Normal: keep 3 mantissa bits, round on the 20 dropped. A carry into the exponent is right (and 464 was cut above).
    let r = (exp << 3) | ((a >>> 20) & 7);
    const rem = a & 0xfffff;
    if (rem > 0x80000 || (rem === 0x80000 && r & 1)) r++;
    return sign | r;
  }
  // Subnormal (m * 2^-9): shift the 24-bit significand right by 21..24.
  const shift = 21 - exp;
  const sig = (a & 0x7fffff) | 0x800000;
  let r = sig >>> shift;
  const rem = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && r & 1)) r++;
  return sign | r;
}

/** The e4m3 code of `v` rounded to float32 first: round to nearest even, saturating to +-448, NaN to 0x7f. */
export function floatToE4m3Bits(v: number): number {
  f[0] = v;
  return e4m3OfBits(u[0]);
}

const TABLE = (() => {
  const t = new Float32Array(256);
  for (let c = 0; c < 256; c++) {
    const e = (c >> 3) & 15;
    const m = c & 7;
    const mag = (c & 0x7f) === 0x7f ? Number.NaN : e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7);
    t[c] = c & 0x80 ? -mag : mag;
  }
  return t;
})();

/** The value of an e4m3 code (0x7f and 0xff are NaN). */
export function e4m3ToFloat(code: number): number {
  return TABLE[code & 0xff];
}

/** Scale byte of a row whose largest magnitude has the float32 bits `a` (sign cleared). */
function scaleByteOfBits(a: number): number {
  if (a < 0x00800000 || a >= 0x7f800000) return 127; // zero, subnormal, infinite or NaN: factor 1
  // amax = 1.m * 2^E; amax * 2^-e lands in (224, 448]: 2^8 * 1.m when 1.m <= 1.75, else 2^7 * 1.m.
  const e = (a >>> 23) - 127 - ((a & 0x7fffff) <= 0x600000 ? 8 : 7);
  return Math.min(254, Math.max(1, e + 127));
}

/**
 * The scale byte s of a row whose largest magnitude is `amax`: the row is stored as
 * codes of x * 2^(127 - s), with amax * 2^(127 - s) in (224, 448]; 127 (factor 1) for a
 * zero, subnormal, infinite or NaN amax.
 */
export function e4m3ScaleByte(amax: number): number {
  f[0] = amax;
  return scaleByteOfBits(u[0] & 0x7fffffff);
}

const FACTORS = Float64Array.from({ length: 256 }, (_, s) => 2 ** (s - 127));

/** The factor 2^(s - 127) a scale byte stands for (exact in float32 for every byte). */
export function e4m3ScaleFactor(s: number): number {
  return FACTORS[s & 0xff];
}

/**
 * Quantizes the `d` values of `src` from `srcOff` (one token's K or V of one head) into
 * `codes` from `codeOff`; returns their scale byte. The largest magnitude is taken on
 * float32 bits (a NaN counts as the largest), so it is exact in any order.
 */
export function quantizeHead(src: ArrayLike<number>, srcOff: number, d: number, codes: Uint8Array, codeOff: number): number {
  let amax = 0;
  for (let e = 0; e < d; e++) {
    f[0] = src[srcOff + e];
    const a = u[0] & 0x7fffffff;
    if (a > amax) amax = a;
  }
  const s = scaleByteOfBits(amax);
  const mul = FACTORS[254 - s]; // 2^(127 - s)
  // x * 2^(127 - s) in double is exact; its rounding to float32 (below float32's normals only) is the float32 product's.
  for (let e = 0; e < d; e++) codes[codeOff + e] = floatToE4m3Bits(src[srcOff + e] * mul);
  return s;
}

/** Writes the `d` values a row of codes and its scale byte stand for into `out` from `outOff` (every product exact). */
export function dequantizeHead(codes: Uint8Array, codeOff: number, d: number, s: number, out: Float32Array, outOff: number): void {
  const factor = FACTORS[s & 0xff];
  const table = TABLE;
  for (let e = 0; e < d; e++) out[outOff + e] = table[codes[codeOff + e]] * factor;
}
