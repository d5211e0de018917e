import type { DType, Tensor } from '../backend.js';
import { invalidArgument } from '../errors.js';

/** The reference backend's tensor: plain typed arrays in JS memory. */
export class RefTensor implements Tensor {
  constructor(
    readonly data: Float32Array | Int32Array,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) {
      throw invalidArgument(`tensor of shape [${shape.join(', ')}] needs ${n} elements, got ${data.length}`);
    }
  }

  get f32(): Float32Array {
    if (!(this.data instanceof Float32Array)) throw invalidArgument(`expected an f32 tensor, got ${this.dtype}`);
    return this.data;
  }

  get i32(): Int32Array {
    if (!(this.data instanceof Int32Array)) throw invalidArgument(`expected an i32 tensor, got ${this.dtype}`);
    return this.data;
  }
}

export function asRef(t: Tensor): RefTensor {
  if (!(t instanceof RefTensor)) throw invalidArgument('tensor does not belong to the reference backend');
  return t;
}

export function f32(shape: readonly number[]): RefTensor {
  return new RefTensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, 'f32');
}

/** Product of all dimensions after the first. */
export function rowSize(t: Tensor): number {
  return t.shape.slice(1).reduce((a, b) => a * b, 1);
}
