import { ReferenceBackend, asRef } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { quantize } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { argmaxKernel, sampleKernel } from './decoding.kernel.js';

const ref = new ReferenceBackend();

describe('argmax and sample match the reference backend', () => {
  const rng = new Rng(9);
  const rows = 3;
  const vocab = 300;

  it.each(['f32', 'f16'] as const)('argmax (%s), lowest index on ties', (dtype) => {
    const logits = quantize(rng.array(rows * vocab, -4, 4), dtype);
    logits[2 * vocab + 7] = 9;
    logits[2 * vocab + 200] = 9;
    const out = new EmuBuffer('i32', rows);
    emulateKernel(argmaxKernel, { dtype }).run({ logits: EmuBuffer.from(dtype, logits), out, rows, vocab });
    expect(Array.from(out.toInt32())).toEqual(Array.from(asRef(ref.argmax(ref.fromArray(logits, [rows, vocab]))).i32));
    expect(out.toInt32()[2]).toBe(7);
  });

  it('argmax over a vocabulary wider than the block: ties in one thread and across warps, equal rows, -0 against +0', () => {
    const width = 3000;
    const logits = quantize(rng.array(4 * width, -4, 4), 'f32');
    // Row 0: the maximum at 1700, 1700 + 512 (the same thread) and 2900 (another warp).
    for (const i of [2900, 1700 + 512, 1700]) logits[i] = 7;
    // Row 1: every logit equal; row 2: -0 before +0 as the largest; row 3 as drawn.
    logits.fill(0.5, width, 2 * width);
    logits.fill(-1, 2 * width, 3 * width);
    logits[2 * width + 2600] = -0;
    logits[2 * width + 2700] = 0;
    const out = new EmuBuffer('i32', 4);
    emulateKernel(argmaxKernel, { dtype: 'f32' }).run({ logits: EmuBuffer.from('f32', logits), out, rows: 4, vocab: width });
    const want = Array.from(asRef(ref.argmax(ref.fromArray(logits, [4, width]))).i32);
    expect(Array.from(out.toInt32())).toEqual(want);
    expect(want.slice(0, 3)).toEqual([1700, 0, 2600]);
  });

  it.each([
    { temperature: 0.8, topK: 0, topP: 1 },
    { temperature: 1, topK: 20, topP: 1 },
    { temperature: 0.7, topK: 0, topP: 0.9 },
    { temperature: 1.3, topK: 50, topP: 0.8 },
    { temperature: 0, topK: 0, topP: 1 },
  ])('sample with %o', (params) => {
    const logits = quantize(rng.array(rows * vocab, -3, 3), 'f32');
    const kernel = emulateKernel(sampleKernel, { dtype: 'f32' });
    let agree = 0;
    const trials = 3;
    for (let trial = 0; trial < trials; trial++) {
      const uniforms = Float32Array.from({ length: rows }, () => rng.next());
      const out = new EmuBuffer('i32', rows);
      kernel.run({ logits: EmuBuffer.from('f32', logits), uniforms: EmuBuffer.from('f32', uniforms), out, rows, vocab, ...params });
      const want = asRef(ref.sample(ref.fromArray(logits, [rows, vocab]), params, ref.fromArray(uniforms, [rows]))).i32;
      agree += Array.from(out.toInt32()).filter((t, i) => t === want[i]).length;
    }
    // f32 block sums differ from the reference's f64 running sums only in the last
    // bits, which can flip a draw that lands within ~1e-6 of a boundary: none of these do.
    expect(agree).toBe(trials * rows);
  });
});
