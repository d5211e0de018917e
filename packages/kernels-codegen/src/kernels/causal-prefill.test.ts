import { ReferenceBackend, asRef } from '@arkvale/core';
import { describe, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose, quantize } from '../test-support/compare.js';
import { emulateKeySums } from '../test-support/key-sums.js';
import { Rng } from '../test-support/random.js';
import { causalPrefillKernel } from './causal-prefill.kernel.js';
import { prefillKeyScoresKernel } from './key-scores.kernel.js';

const ref = new ReferenceBackend();

describe('causal_prefill (tensor-core fragments emulated) matches the reference causal attention', () => {
  it.each([
    { dtype: 'f16', headDim: 64, tokens: 70, numHeads: 2, numKvHeads: 1, stages: 1 },
    { dtype: 'bf16', headDim: 128, tokens: 33, numHeads: 2, numKvHeads: 2, stages: 2 },
    { dtype: 'f16', headDim: 256, tokens: 40, numHeads: 1, numKvHeads: 1, stages: 2 },
    // Two query blocks, a partial last key tile, GQA group 4.
    { dtype: 'f16', headDim: 128, tokens: 150, numHeads: 4, numKvHeads: 1, stages: 1 },
    // Three query blocks of 128 rows over five key tiles of 64 (the K and V buffers reloaded
    // while warps above the diagonal wait at the barriers), GQA group 2.
    // The same with two stages: tile t + 1 loading during all of tile t.
    { dtype: 'bf16', headDim: 64, tokens: 300, numHeads: 2, numKvHeads: 1, stages: 1 },
    { dtype: 'f16', headDim: 64, tokens: 300, numHeads: 2, numKvHeads: 1, stages: 2 },
  ] as const)(
    '$dtype hd$headDim, $tokens tokens, heads $numHeads/$numKvHeads, $stages stage(s)',
    ({ dtype, headDim, tokens, numHeads, numKvHeads, stages }) => {
      const rng = new Rng(21);
      const q = quantize(rng.array(tokens * numHeads * headDim, -1, 1), dtype);
      const k = quantize(rng.array(tokens * numKvHeads * headDim, -1, 1), dtype);
      const v = quantize(rng.array(tokens * numKvHeads * headDim, -1, 1), dtype);
      const scale = 1 / Math.sqrt(headDim);
      const out = new EmuBuffer(dtype, q.length);
      const lse = new EmuBuffer('f32', tokens * numHeads);
      emulateKernel(causalPrefillKernel, { dtype, headDim, stages }).run({
        q: EmuBuffer.from(dtype, q),
        k: EmuBuffer.from(dtype, k),
        v: EmuBuffer.from(dtype, v),
        out,
        lse,
        numTokens: tokens,
        numHeads,
        numKvHeads,
        scale,
      });
      const args = {
        q: ref.fromArray(q, [tokens, numHeads, headDim]),
        k: ref.fromArray(k, [tokens, numKvHeads, headDim]),
        v: ref.fromArray(v, [tokens, numKvHeads, headDim]),
        scale,
      };
      const want = ref.causalAttention(args);
      // The key statistics from this lse, as the CUDA backend forms them.
      const last = new EmuBuffer('f32', tokens);
      emulateKernel(prefillKeyScoresKernel, { dtype, headDim }).run({
        q: EmuBuffer.from(dtype, q),
        k: EmuBuffer.from(dtype, k),
        lse,
        scores: last,
        numTokens: tokens,
        numHeads,
        numKvHeads,
        scale,
      });
      expectClose(last.toFloat32(), asRef(ref.causalAttention({ ...args, keyScores: 'last' }).keyScores!).f32, 1e-4, 1e-6);
      const sums = emulateKeySums(dtype, headDim, q, k, lse, tokens, numHeads, numKvHeads, scale);
      expectClose(sums, asRef(ref.causalAttention({ ...args, keyScores: 'sum' }).keyScores!).f32, 1e-4, 1e-6);
      // P is rounded to the 16-bit type before P V (as every FlashAttention kernel does).
      const eps = dtype === 'f16' ? 2 ** -9 : 2 ** -6;
      expectClose(out.toFloat32(), asRef(want.out).f32, eps, eps);
    },
  );
});
