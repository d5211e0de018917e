import type { Backend, Tensor } from '@arkvale/core';
import { decodeFloats, floatToBf16Bits, floatToHalfBits, randomFloats } from '@arkvale/core';

/** One check's outcome: the error against the reference and the tolerance it had to meet. */
export interface CheckResult {
  readonly check: string;
  readonly detail: string;
  readonly error: number;
  readonly tolerance: number;
  readonly ok: boolean;
}

/** ||a - b|| / ||b|| (||a|| when b is all zeros); NaN or a length mismatch is Infinity. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    if (Number.isNaN(d)) return Infinity;
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / (den > 0 ? den : 1));
}

/** Elements that differ (exact comparisons: token ids, plans, copied pages); a length mismatch counts every element. */
export function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!(a[i] === b[i] || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) n++;
  return n;
}

/** The values as a 16-bit float type stores them, and their bytes. */
export function quantize(values: Float32Array, dtype: 'f16' | 'bf16'): { bytes: Uint8Array; values: Float32Array } {
  const encode = dtype === 'f16' ? floatToHalfBits : floatToBf16Bits;
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = encode(values[i]);
  const bytes = new Uint8Array(bits.buffer);
  return { bytes, values: decodeFloats(bytes, dtype) };
}

/** The same tensor on both backends. */
export interface TwinTensor {
  readonly gpu: Tensor;
  readonly ref: Tensor;
  readonly values: Float32Array | Int32Array;
}

/**
 * The backend under test beside the reference, fed identical inputs: floats are drawn
 * fresh, rounded to the GPU's dtype, and given to the reference as exactly those
 * values, so every difference comes from the computation.
 */
export class Twin {
  constructor(
    readonly gpu: Backend,
    readonly ref: Backend,
    readonly dtype: 'f16' | 'bf16',
    readonly next: () => number,
  ) {}

  /** Random activations in the GPU's dtype, uniform in [-scale, scale). */
  floats(shape: readonly number[], scale = 1): TwinTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const { bytes, values } = quantize(randomFloats(this.next, n, scale), this.dtype);
    return { gpu: this.gpu.fromBytes(bytes, shape, this.dtype), ref: this.ref.fromArray(values, shape), values };
  }

  /** Random f32 values (e.g. logits, scores), exact on both sides. */
  f32(shape: readonly number[], scale = 1): TwinTensor {
    const values = randomFloats(
      this.next,
      shape.reduce((a, b) => a * b, 1),
      scale,
    );
    return { gpu: this.gpu.fromArray(values, shape), ref: this.ref.fromArray(values, shape), values };
  }

  ints(values: readonly number[], shape: readonly number[] = [values.length]): TwinTensor {
    return { gpu: this.gpu.fromArray(values, shape, 'i32'), ref: this.ref.fromArray(values, shape, 'i32'), values: Int32Array.from(values) };
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Reads both sides of a result. */
  read(gpu: Tensor, ref: Tensor): [Float32Array | Int32Array, Float32Array | Int32Array] {
    return [this.gpu.readSync(gpu), this.ref.readSync(ref)];
  }
}

/** Tolerances: float32 results of identical inputs; results rounded to a 16-bit float type. */
export const TOLERANCE = { f32: 1e-5, half: 1e-2, exact: 0 } as const;

export function result(check: string, detail: string, error: number, tolerance: number): CheckResult {
  return { check, detail, error, tolerance, ok: error <= tolerance };
}
