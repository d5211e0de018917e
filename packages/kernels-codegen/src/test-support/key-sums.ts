/** The CUDA backend's keyScores 'sum' in emulation: prefill_key_sums, then prefill_key_sums_merge. */
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { prefillKeySumsKernel, prefillKeySumsMergeKernel } from '../kernels/key-scores.kernel.js';

export function emulateKeySums(
  dtype: 'f16' | 'bf16',
  headDim: number,
  q: Float32Array,
  k: Float32Array,
  lse: EmuBuffer,
  tokens: number,
  numHeads: number,
  numKvHeads: number,
  scale: number,
): Float32Array {
  const partial = new EmuBuffer('f32', numHeads * tokens);
  emulateKernel(prefillKeySumsKernel, { dtype, headDim }).run({
    q: EmuBuffer.from(dtype, q),
    k: EmuBuffer.from(dtype, k),
    lse,
    partial,
    numTokens: tokens,
    numHeads,
    numKvHeads,
    scale,
  });
  const scores = new EmuBuffer('f32', tokens);
  emulateKernel(prefillKeySumsMergeKernel, {}).run({ partial, scores, numTokens: tokens, numHeads });
  return scores.toFloat32();
}
