import { ReferenceBackend, asRef } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize, EPS } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { residualAddKernel, siluGateKernel, siluGatePackedKernel } from './elementwise.kernel.js';

const ref = new ReferenceBackend();

describe.each(['f16', 'bf16'] as const)('elementwise kernels (%s) match the reference backend', (dtype) => {
  // 2048 elements per block: 4100 exercises two blocks and a scalar tail.
  const n = 4100;
  const rng = new Rng(7);
  const a = quantize(rng.array(n, -4, 4), dtype);
  const b = quantize(rng.array(n, -4, 4), dtype);

  it('residual_add', () => {
    const out = new EmuBuffer(dtype, n);
    emulateKernel(residualAddKernel, { dtype }).run({ a: EmuBuffer.from(dtype, a), b: EmuBuffer.from(dtype, b), out, n });
    const want = asRef(ref.add(ref.fromArray(a, [n]), ref.fromArray(b, [n]))).f32;
    expectClose(out.toFloat32(), quantize(want, dtype), 0);
  });

  it('silu_gate', () => {
    const out = new EmuBuffer(dtype, n);
    emulateKernel(siluGateKernel, { dtype }).run({ gate: EmuBuffer.from(dtype, a), up: EmuBuffer.from(dtype, b), out, n });
    // The reference's packed op over one row [gate | up].
    const want = asRef(ref.siluGatePacked(ref.fromArray([...a, ...b], [1, 2 * n]))).f32;
    expectClose(out.toFloat32(), quantize(want, dtype), EPS[dtype] * 2, 1e-6);
  });

  // Widths 1032 (vectors; 3 rows cross a block edge) and 1025 (element by element).
  it.each([
    [3, 1032],
    [4, 1025],
  ])('silu_gate_packed of %i rows of %i gives the bits silu_gate gives the halves', (rows, width) => {
    const gateUp = quantize(rng.array(rows * 2 * width, -4, 4), dtype);
    const half = (h: number) => Float32Array.from({ length: rows * width }, (_, i) => gateUp[Math.floor(i / width) * 2 * width + h * width + (i % width)]);
    const out = new EmuBuffer(dtype, rows * width).fill(NaN);
    emulateKernel(siluGatePackedKernel, { dtype }).run({ gateUp: EmuBuffer.from(dtype, gateUp), out, rows, width });
    const apart = new EmuBuffer(dtype, rows * width);
    emulateKernel(siluGateKernel, { dtype }).run({ gate: EmuBuffer.from(dtype, half(0)), up: EmuBuffer.from(dtype, half(1)), out: apart, n: rows * width });
    expect(Array.from(out.toFloat32())).toEqual(Array.from(apart.toFloat32()));
    const want = asRef(ref.siluGatePacked(ref.fromArray(gateUp, [rows, 2 * width]))).f32;
    expectClose(out.toFloat32(), quantize(want, dtype), EPS[dtype] * 2, 1e-6);
  });
});
