import { ReferenceBackend, asRef } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { expectClose, quantize } from '../test-support/compare.js';
import { emulateKeySums } from '../test-support/key-sums.js';
import { Rng } from '../test-support/random.js';

const ref = new ReferenceBackend();

/** Each (query, head)'s log-sum-exp of its causal scores, in double: what causal_prefill writes (its own test checks that). */
function logSumExps(q: Float32Array, k: Float32Array, tokens: number, numHeads: number, numKvHeads: number, headDim: number, scale: number): Float32Array {
  const lse = new Float32Array(tokens * numHeads);
  const scores = new Float64Array(tokens);
  for (let i = 0; i < tokens; i++) {
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / (numHeads / numKvHeads));
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let e = 0; e < headDim; e++) dot += q[(i * numHeads + h) * headDim + e] * k[(j * numKvHeads + kvh) * headDim + e];
        scores[j] = dot * scale;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) sum += Math.exp(scores[j] - max);
      lse[i * numHeads + h] = max + Math.log(sum);
    }
  }
  return lse;
}

describe("prefill_key_sums (causal_prefill's tensor-core loop, transposed) matches the reference keyScores 'sum'", () => {
  it.each([
    { dtype: 'f16', headDim: 64, tokens: 70, numHeads: 2, numKvHeads: 2 },
    // Two key blocks, a partial last query tile, GQA group 4.
    { dtype: 'bf16', headDim: 128, tokens: 97, numHeads: 4, numKvHeads: 1 },
    // Three key blocks and three stages of queries (the first buffer reused), group 4.
    { dtype: 'bf16', headDim: 64, tokens: 130, numHeads: 4, numKvHeads: 1 },
    { dtype: 'f16', headDim: 64, tokens: 45, numHeads: 8, numKvHeads: 1 },
    { dtype: 'f16', headDim: 128, tokens: 1, numHeads: 8, numKvHeads: 1 },
    { dtype: 'f16', headDim: 256, tokens: 40, numHeads: 2, numKvHeads: 1 },
  ] as const)('$dtype hd$headDim, $tokens tokens, heads $numHeads/$numKvHeads', ({ dtype, headDim, tokens, numHeads, numKvHeads }) => {
    const rng = new Rng(23);
    // Scores of a few units: softmaxes far from uniform, so a wrong normaliser or mask shows.
    const q = quantize(rng.array(tokens * numHeads * headDim, -2, 2), dtype);
    const k = quantize(rng.array(tokens * numKvHeads * headDim, -2, 2), dtype);
    const v = quantize(rng.array(tokens * numKvHeads * headDim, -1, 1), dtype);
    const scale = 1 / Math.sqrt(headDim);
    const lse = EmuBuffer.from('f32', logSumExps(q, k, tokens, numHeads, numKvHeads, headDim, scale));
    const got = emulateKeySums(dtype, headDim, q, k, lse, tokens, numHeads, numKvHeads, scale);
    const want = asRef(
      ref.causalAttention({
        q: ref.fromArray(q, [tokens, numHeads, headDim]),
        k: ref.fromArray(k, [tokens, numKvHeads, headDim]),
        v: ref.fromArray(v, [tokens, numKvHeads, headDim]),
        scale,
        keyScores: 'sum',
      }).keyScores!,
    ).f32;
    expectClose(got, want, 1e-4, 1e-6);
    // Every query's probabilities sum to 1 (heads averaged): the sums add up to the token count.
    expect(got.reduce((a, b) => a + b, 0)).toBeCloseTo(tokens, 2);
  });
});
