// Helpers of the GPU self-test: a seeded random source, assertions, and float
// encodings for building kernel and gemm inputs.
import { bf16ToFloat, floatToBf16Bits, floatToHalfBits, halfToFloat, seededUniform } from '@arkvale/core';

/** Reproducible random numbers (core's seeded stream). */
export const random = seededUniform;

export function randomBytes(rand, n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 256) | 0;
  return out;
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Runs fn, which must throw an error whose message matches `pattern`; returns the message. */
export function throwsMatching(fn, pattern, what) {
  let message;
  try {
    fn();
  } catch (e) {
    message = e instanceof Error ? e.message : String(e);
  }
  check(message !== undefined, `${what}: did not throw`);
  check(pattern.test(message), `${what}: message ${JSON.stringify(message)} does not match ${pattern}`);
  return message;
}

/** Index of the first differing byte, or -1. */
export function firstDifference(a, b) {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export const ELEMENT_BYTES = { f32: 4, f16: 2, bf16: 2 };

/** Values rounded to `dtype`, and their bytes. */
export function encode(values, dtype) {
  const bytes = new Uint8Array(values.length * ELEMENT_BYTES[dtype]);
  const view = new DataView(bytes.buffer);
  const rounded = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'f32') {
      view.setFloat32(i * 4, values[i], true);
      rounded[i] = Math.fround(values[i]);
    } else if (dtype === 'f16') {
      const h = floatToHalfBits(values[i]);
      view.setUint16(i * 2, h, true);
      rounded[i] = halfToFloat(h);
    } else {
      const b = floatToBf16Bits(values[i]);
      view.setUint16(i * 2, b, true);
      rounded[i] = bf16ToFloat(b);
    }
  }
  return { bytes, rounded };
}

export function decode(bytes, dtype) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / ELEMENT_BYTES[dtype];
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'f32') out[i] = view.getFloat32(i * 4, true);
    else if (dtype === 'f16') out[i] = halfToFloat(view.getUint16(i * 2, true));
    else out[i] = bf16ToFloat(view.getUint16(i * 2, true));
  }
  return out;
}

export const MiB = 1 << 20;
