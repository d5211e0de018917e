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
