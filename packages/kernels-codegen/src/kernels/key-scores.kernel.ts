/**
 * Per-key attention statistics of a causal prefill (CausalAttentionArgs.keyScores),
 * averaged over heads: `last` is the last query's attention (TOVA, ArkVale's prefill
 * selection), `sum` adds every query's (H2O's accumulated attention). Recomputes
 * q . k against the per-row log-sum-exp that causal_prefill writes, one warp per key.
 * `sum` costs O(T^2) dot products, like the reference.
 */
import { blockIdx, f32, i64, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product, type DType } from '../spec/matrix.js';
import { warpSum } from './common.js';
import { checkHeadDim } from './layout.js';

export interface KeyScoresSpec {
  readonly dtype: DType;
  readonly headDim: number;
  readonly mode: 'last' | 'sum';
}

const WARPS = 4;

export function prefillKeyScores<T extends Float16>(
  spec: KeyScoresSpec,
  q: GlobalIn<T>,
  k: GlobalIn<T>,
  lse: GlobalIn<f32>,
  scores: Global<f32>,
  numTokens: i32,
  numHeads: i32,
  numKvHeads: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const lane = threadIdx.x & 31;
  const j = blockIdx.x * WARPS + (threadIdx.x >> 5);
  if (j >= numTokens) return;
  const perKv = numHeads / numKvHeads;
  const first = spec.mode === 'last' ? numTokens - 1 : j;
  let acc: f32 = 0;
  for (let i = first; i < numTokens; i++) {
    for (let h = 0; h < numHeads; h++) {
      const qi = (i64(i) * numHeads + h) * D;
      const kj = (i64(j) * numKvHeads + h / perKv) * D;
      let dot: f32 = 0;
      for (let e = lane; e < D; e += 32) dot += f32(q[qi + e]) * f32(k[kj + e]);
      dot = warpSum(dot);
      acc += Math.exp(dot * scale - lse[i * numHeads + h]) / f32(numHeads);
    }
  }
  if (lane === 0) scores[j] = acc;
}

export const prefillKeyScoresKernel = defineKernel<KeyScoresSpec>({
  family: 'prefill_key_scores',
  summary: 'per-key attention of the last query (`last`) or summed over queries (`sum`), averaged over heads, from causal_prefill\'s lse',
  source: import.meta.url,
  kernel: prefillKeyScores,
  name: (s) => `prefill_key_scores_${s.mode}_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: () => [ceilDiv(arg('numTokens'), WARPS), 1, 1],
  specs: (m) => product({ mode: ['last', 'sum'] as const, dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
