import { ReferenceBackend, type Tensor } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu-backend.js';
import { expectClose } from './test-support/compare.js';
import { simdLevels, withSimd } from './test-support/native-levels.js';
import { randomArray, rng } from './test-support/random.js';

const reference = new ReferenceBackend();
const cpu = new CpuBackend();

// [m, n, k]: single rows and tiny sizes, both sides of the small-m path (m < 16),
// K spanning several 256-wide blocks, M and N spanning several 120 x 256 tiles
// with ragged edges, and the model's decode shape.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 19],
  [3, 5, 7],
  [15, 33, 65],
  [16, 17, 31],
  [17, 40, 300],
  [130, 270, 513],
  [1, 1536, 512],
];

function product(backend: ReferenceBackend, x: Float32Array, xShape: number[], w: Float32Array, wShape: number[]): Tensor {
  return backend.matmul(backend.fromArray(x, xShape), backend.fromArray(w, wShape));
}

describe.each(simdLevels())('CpuBackend.matmul (%s kernels)', (level) => {
  it.each(SHAPES)('matches the reference for x [%i, k] @ w [%i, k]^T, k = %i', (m, n, k) => {
    const next = rng(m * 1009 + n * 31 + k);
    const x = randomArray(next, m * k);
    const w = randomArray(next, n * k);
    const got = withSimd(level, () => product(cpu, x, [m, k], w, [n, k]));
    const want = product(reference, x, [m, k], w, [n, k]);
    expect(got.shape).toEqual([m, n]);
    expectClose(cpu.readSync(got), reference.readSync(want), `matmul ${m}x${n}x${k}`);
  });

  it('flattens every dimension after the first, as the reference does', () => {
    const next = rng(7);
    const x = randomArray(next, 5 * 3 * 4);
    const w = randomArray(next, 6 * 12);
    const got = withSimd(level, () => product(cpu, x, [5, 3, 4], w, [6, 12]));
    expect(got.shape).toEqual([5, 6]);
    expectClose(cpu.readSync(got), reference.readSync(product(reference, x, [5, 3, 4], w, [6, 12])), 'matmul 3-D x');
  });
});

describe('CpuBackend.matmul errors', () => {
  it('rejects mismatched inner dimensions like the reference', () => {
    const x = cpu.fromArray(new Float32Array(6), [2, 3]);
    const w = cpu.fromArray(new Float32Array(8), [2, 4]);
    expect(() => cpu.matmul(x, w)).toThrow('matmul: inner dimensions differ (3 vs 4)');
    expect(() => reference.matmul(x, w)).toThrow('matmul: inner dimensions differ (3 vs 4)');
  });

  it('rejects integer tensors', () => {
    const x = cpu.fromArray([1, 2], [1, 2], 'i32');
    const w = cpu.fromArray([1, 2], [1, 2]);
    expect(() => cpu.matmul(x, w)).toThrow('expected an f32 tensor, got i32');
  });

  it('returns zeros for an empty inner dimension', () => {
    const out = cpu.matmul(cpu.fromArray([], [2, 0]), cpu.fromArray([], [3, 0]));
    expect(Array.from(cpu.readSync(out))).toEqual([0, 0, 0, 0, 0, 0]);
  });
});
