import { expect } from 'vitest';

/**
 * Float32 results against the reference (which accumulates in float64): each
 * element within `rtol` of its expected value, measured against the larger of
 * the value and the array's mean magnitude, so sums that cancel to near zero
 * are judged on the scale of their terms.
 */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rtol = 1e-4): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let meanAbs = 0;
  for (let i = 0; i < want.length; i++) meanAbs += Math.abs(want[i]);
  meanAbs /= Math.max(want.length, 1);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= rtol * (Math.abs(want[i]) + meanAbs))) {
      expect.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]} (error ${err.toExponential(2)}, mean |x| ${meanAbs.toExponential(2)})`);
    }
  }
}
