import { ReferenceBackend, asRef } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize, EPS } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { embeddingGatherKernel } from './embedding.kernel.js';
import { residualAddKernel } from './elementwise.kernel.js';
import { addRmsNormKernel, rmsNormKernel } from './rms-norm.kernel.js';
import { ropeKernel, ropeQkvKernel, ropeTableKernel } from './rope.kernel.js';

const ref = new ReferenceBackend();

describe.each(['f16', 'bf16'] as const)('dense kernels (%s) match the reference backend', (dtype) => {
  const rng = new Rng(3);

  it.each([64, 72])('rms_norm, hidden %i (vector and scalar paths)', (hidden) => {
    const rows = 3;
    const x = quantize(rng.array(rows * hidden, -3, 3), dtype);
    const w = quantize(rng.array(hidden, 0.5, 1.5), dtype);
    const out = new EmuBuffer(dtype, rows * hidden);
    emulateKernel(rmsNormKernel, { dtype }).run({ x: EmuBuffer.from(dtype, x), weight: EmuBuffer.from(dtype, w), out, rows, hidden, eps: 1e-5 });
    const want = asRef(ref.rmsNorm(ref.fromArray(x, [rows, hidden]), ref.fromArray(w, [hidden]), 1e-5)).f32;
    expectClose(out.toFloat32(), want, EPS[dtype] * 2, 1e-6);
  });

  // 2064: vectors in registers, two strides for some threads; 9000: vectors too wide to keep (read back); 2066: the scalar path, several strides.
  it.each([2064, 9000, 2066])('add_rms_norm, hidden %i: residual_add then rms_norm, bit for bit', (hidden) => {
    const rows = 2;
    const a = EmuBuffer.from(dtype, rng.array(rows * hidden, -3, 3));
    const b = EmuBuffer.from(dtype, rng.array(rows * hidden, -3, 3));
    const weight = EmuBuffer.from(dtype, rng.array(hidden, 0.5, 1.5));
    const sum = new EmuBuffer(dtype, rows * hidden).fill(Number.NaN);
    const out = new EmuBuffer(dtype, rows * hidden).fill(Number.NaN);
    emulateKernel(addRmsNormKernel, { dtype }).run({ a, b, weight, sum, out, rows, hidden, eps: 1e-5 });
    const apartSum = new EmuBuffer(dtype, rows * hidden);
    const apartOut = new EmuBuffer(dtype, rows * hidden);
    emulateKernel(residualAddKernel, { dtype }).run({ a, b, out: apartSum, n: rows * hidden });
    emulateKernel(rmsNormKernel, { dtype }).run({ x: apartSum, weight, out: apartOut, rows, hidden, eps: 1e-5 });
    expect(Array.from(sum.toFloat32())).toEqual(Array.from(apartSum.toFloat32()));
    expect(Array.from(out.toFloat32())).toEqual(Array.from(apartOut.toFloat32()));
    const want = asRef(ref.rmsNorm(ref.fromArray(apartSum.toFloat32(), [rows, hidden]), ref.fromArray(weight.toFloat32(), [hidden]), 1e-5)).f32;
    expectClose(out.toFloat32(), want, EPS[dtype] * 2, 1e-6);
  });

  it('rope_table + rope rotate as the reference does', () => {
    const headDim = 64;
    const maxPositions = 40;
    const invFreq = Float32Array.from({ length: headDim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / headDim) / 2);
    const cos = new EmuBuffer('f32', (maxPositions * headDim) / 2);
    const sin = new EmuBuffer('f32', (maxPositions * headDim) / 2);
    emulateKernel(ropeTableKernel, {}).run({ invFreq: EmuBuffer.from('f32', invFreq), cos, sin, maxPositions, half: headDim / 2, attentionFactor: 1.25 });
    const table = ref.createRopeTable({ headDim, maxPositions, invFreq, attentionFactor: 1.25 }) as unknown as { cos: Float32Array; sin: Float32Array };
    expectClose(cos.toFloat32(), table.cos, 1e-6, 1e-6);
    expectClose(sin.toFloat32(), table.sin, 1e-6, 1e-6);

    const tokens = 3;
    // 5 x 32 pairs per token: two blocks of 128 threads, the second part-filled.
    const heads = 5;
    const x = quantize(rng.array(tokens * heads * headDim), dtype);
    const positions = [0, 17, 39];
    const out = new EmuBuffer(dtype, x.length);
    emulateKernel(ropeKernel, { dtype, headDim }).run({
      x: EmuBuffer.from(dtype, x),
      positions: EmuBuffer.from('i32', positions),
      cos: EmuBuffer.from('f32', table.cos),
      sin: EmuBuffer.from('f32', table.sin),
      out,
      numTokens: tokens,
      numHeads: heads,
      maxPositions,
    });
    // Rotate half with the reference's table: (x1 cos - x2 sin, x2 cos + x1 sin) for dims e and e + headDim / 2.
    const half = headDim / 2;
    const want = Float32Array.from(x, (_, i) => {
      const [row, d] = [Math.floor(i / headDim), i % headDim];
      const e = d % half;
      const at = positions[Math.floor(row / heads)] * half + e;
      const [c, s] = [table.cos[at], table.sin[at]];
      const [x1, x2] = [x[row * headDim + e], x[row * headDim + half + e]];
      return d < half ? x1 * c - x2 * s : x2 * c + x1 * s;
    });
    expectClose(out.toFloat32(), want, EPS[dtype] * 2, 1e-6);
  });

  it('rope_qkv gives q and k the bits rope gives them, v the bits of the product, and matches the reference', () => {
    const headDim = 64;
    const maxPositions = 40;
    const invFreq = Float32Array.from({ length: headDim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / headDim));
    const table = ref.createRopeTable({ headDim, maxPositions, invFreq }) as unknown as { cos: Float32Array; sin: Float32Array };
    const trig = { cos: EmuBuffer.from('f32', table.cos), sin: EmuBuffer.from('f32', table.sin), maxPositions };
    // 6 + 2 x 1 heads of 32 pairs per token: two blocks of 128 threads; the last position is outside the table.
    const [tokens, heads, kvHeads] = [3, 6, 1];
    const rowHeads = heads + 2 * kvHeads;
    const qkv = quantize(rng.array(tokens * rowHeads * headDim), dtype);
    const positions = EmuBuffer.from('i32', [0, 17, 40]);
    const q = new EmuBuffer(dtype, tokens * heads * headDim).fill(NaN);
    const k = new EmuBuffer(dtype, tokens * kvHeads * headDim).fill(NaN);
    const v = new EmuBuffer(dtype, tokens * kvHeads * headDim).fill(NaN);
    emulateKernel(ropeQkvKernel, { dtype, headDim }).run({
      qkv: EmuBuffer.from(dtype, qkv),
      positions,
      ...trig,
      q,
      k,
      v,
      numTokens: tokens,
      numHeads: heads,
      numKvHeads: kvHeads,
    });
    // Each token's row cut into its q, k and v heads by hand, rotated by rope on their own.
    const part = (from: number, count: number) =>
      Float32Array.from({ length: tokens * count * headDim }, (_, i) => {
        const [t, rest] = [Math.floor(i / (count * headDim)), i % (count * headDim)];
        return qkv[(t * rowHeads + from) * headDim + rest];
      });
    const rotated = (x: Float32Array, count: number) => {
      const out = new EmuBuffer(dtype, x.length);
      emulateKernel(ropeKernel, { dtype, headDim }).run({ x: EmuBuffer.from(dtype, x), positions, ...trig, out, numTokens: tokens, numHeads: count });
      return Array.from(out.toFloat32());
    };
    const [qPart, kPart, vPart] = [part(0, heads), part(heads, kvHeads), part(heads + kvHeads, kvHeads)];
    expect(Array.from(q.toFloat32())).toEqual(rotated(qPart, heads));
    expect(Array.from(k.toFloat32())).toEqual(rotated(kPart, kvHeads));
    expect(Array.from(v.toFloat32())).toEqual(Array.from(vPart));
    const inTable = ref.fromArray([0, 17, 39], [tokens], 'i32');
    const [wantQ] = ref.ropeQkv(ref.fromArray(qkv, [tokens, rowHeads * headDim]), inTable, table as never, heads, kvHeads);
    // The first two tokens' positions are in the table.
    expectClose(q.toFloat32().subarray(0, 2 * heads * headDim), asRef(wantQ).f32.subarray(0, 2 * heads * headDim), EPS[dtype] * 2, 1e-6);
  });

  it.each([16, 12])('embedding_gather, rows of %i', (rowSize) => {
    const table = quantize(rng.array(10 * rowSize), dtype);
    const indices = [3, 0, 9, 3];
    const out = new EmuBuffer(dtype, indices.length * rowSize);
    emulateKernel(embeddingGatherKernel, { dtype }).run({
      table: EmuBuffer.from(dtype, table),
      indices: EmuBuffer.from('i32', indices),
      out,
      n: 4,
      rowSize,
      numRows: 10,
    });
    const want = asRef(ref.gatherRows(ref.fromArray(table, [10, rowSize]), ref.fromArray(indices, [4], 'i32'))).f32;
    expect(Array.from(out.toFloat32())).toEqual(Array.from(want));
  });
});
