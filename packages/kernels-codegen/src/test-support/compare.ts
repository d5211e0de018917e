import { expect } from 'vitest';
import { roundBf16, roundHalf } from '../ir/half.js';
import type { DType } from '../spec/matrix.js';

/** Values as they are once stored in `dtype` (what both sides of a comparison must start from). */
export function quantize(values: ArrayLike<number>, dtype: DType | 'f32'): Float32Array {
  const r = dtype === 'f16' ? roundHalf : dtype === 'bf16' ? roundBf16 : Math.fround;
  return Float32Array.from(values, (v) => r(v));
}

/** Relative precision of a dtype (half an ulp at 1). */
export const EPS: Record<DType | 'f32', number> = { f16: 2 ** -11, bf16: 2 ** -8, f32: 2 ** -24 };

/** Elementwise |a - b| <= atol + rtol * |b|, with the first offender in the message. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol = rtol): void {
  expect(actual.length).toBe(expected.length);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    expect.fail(`element ${worst}: got ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}
