/** IEEE half and bfloat16 decoding, used where checkpoints store 16-bit weights. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function bf16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}

/** float32 to IEEE half bits, round to nearest even (as CUDA's `__float2half_rn`). */
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

/** float32 to bfloat16 bits, round to nearest even (as CUDA's `__float2bfloat16_rn`). */
export function floatToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decodes little-endian f32/f16/bf16 bytes into float32. */
export function decodeFloats(bytes: Uint8Array, dtype: 'f32' | 'f16' | 'bf16'): Float32Array {
  if (dtype === 'f32') {
    const copy = bytes.slice();
    return new Float32Array(copy.buffer, 0, bytes.byteLength / 4);
  }
  const n = bytes.byteLength / 2;
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'f16') {
    // A lookup table makes f16 decoding of large checkpoints cheap.
    const table = halfTable();
    for (let i = 0; i < n; i++) out[i] = table[view.getUint16(2 * i, true)];
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = view.getUint16(2 * i, true) << 16;
  }
  return out;
}

let cachedHalfTable: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!cachedHalfTable) {
    cachedHalfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) cachedHalfTable[i] = halfToFloat(i);
  }
  return cachedHalfTable;
}
