/**
 * Token attention probabilities for the token-level policies (H2O, TOVA): for every
 * listed token, softmax(q_h . k * scale) of each query head of the list's group,
 * averaged over the group (PagedAttentionArgs.returnTokenScores). Uses the per-head
 * log-sum-exp that paged_decode_merge writes, so it needs one pass over the keys.
 * One warp per token; lanes split the head dimension. Tokens past a list's end get 0.
 * paged_token_scores_fp8 reads fp8 pages (fp8.ts): codes decoded exactly, each dot
 * product scaled by its token's K factor.
 */
import { blockIdx, decodeE4m3, f32, i64, threadIdx, type Float16, type Global, type GlobalIn, type i32, type u8 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv, mul } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { warpSum } from './common.js';
import { fp8Factor, fp8PageBytes, fp8ScaleBase } from './fp8.js';
import { checkHeadDim, checkPageSize, type PagedSpec } from './layout.js';

const WARPS = 4;

export function pagedTokenScores<T extends Float16>(
  spec: PagedSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<T>,
  pageTable: GlobalIn<i32>,
  pageCounts: GlobalIn<i32>,
  lastPageLens: GlobalIn<i32>,
  lse: GlobalIn<f32>,
  scores: Global<f32>,
  batch: i32,
  numHeads: i32,
  numKvHeads: i32,
  numLists: i32,
  maxPages: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const lane = threadIdx.x & 31;
  const list = blockIdx.x;
  const j = blockIdx.y * WARPS + (threadIdx.x >> 5);
  if (list >= batch * numLists || j >= maxPages * P) return;
  const b = list / numLists;
  const n = (pageCounts[list] - 1) * P + lastPageLens[list];
  const out = i64(list) * (maxPages * P) + j;
  if (j >= n) {
    if (lane === 0) scores[out] = 0;
    return;
  }
  const perList = numHeads / numLists;
  const perKv = numHeads / numKvHeads;
  const page = pageTable[list * maxPages + j / P];
  const pageBase = i64(page) * (2 * numKvHeads * P * D);
  let acc: f32 = 0;
  for (let h = (list % numLists) * perList; h < ((list % numLists) + 1) * perList; h++) {
    const k = pageBase + ((h / perKv) * P + (j % P)) * D;
    let dot: f32 = 0;
    for (let e = lane; e < D; e += 32) dot += f32(q[(b * numHeads + h) * D + e]) * f32(pool[k + e]);
    dot = warpSum(dot);
    acc += Math.exp(dot * scale - lse[b * numHeads + h]) / perList;
  }
  if (lane === 0) scores[out] = acc;
}

export const pagedTokenScoresKernel = defineKernel<PagedSpec>({
  family: 'paged_token_scores',
  summary: "attention probability of every listed token averaged over the list's heads (H2O/TOVA), from paged_decode_merge's lse",
  source: import.meta.url,
  kernel: pagedTokenScores,
  name: (s) => `paged_token_scores_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: (s) => [mul(arg('batch'), arg('numLists')), ceilDiv(mul(arg('maxPages'), s.pageSize), WARPS), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? checkPageSize(s.pageSize),
  unitKey: (s) => s.dtype,
});

export function pagedTokenScoresFp8<T extends Float16>(
  spec: PagedSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<u8>,
  pageTable: GlobalIn<i32>,
  pageCounts: GlobalIn<i32>,
  lastPageLens: GlobalIn<i32>,
  lse: GlobalIn<f32>,
  scores: Global<f32>,
  batch: i32,
  numHeads: i32,
  numKvHeads: i32,
  numLists: i32,
  maxPages: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const lane = threadIdx.x & 31;
  const list = blockIdx.x;
  const j = blockIdx.y * WARPS + (threadIdx.x >> 5);
  if (list >= batch * numLists || j >= maxPages * P) return;
  const b = list / numLists;
  const n = (pageCounts[list] - 1) * P + lastPageLens[list];
  const out = i64(list) * (maxPages * P) + j;
  if (j >= n) {
    if (lane === 0) scores[out] = 0;
    return;
  }
  const perList = numHeads / numLists;
  const perKv = numHeads / numKvHeads;
  const page = pageTable[list * maxPages + j / P];
  const pageBase = i64(page) * fp8PageBytes(spec, numKvHeads);
  const scales = pageBase + fp8ScaleBase(spec, numKvHeads);
  let acc: f32 = 0;
  for (let h = (list % numLists) * perList; h < ((list % numLists) + 1) * perList; h++) {
    const row = (h / perKv) * P + (j % P);
    const k = pageBase + row * D;
    let dot: f32 = 0;
    for (let e = lane; e < D; e += 32) dot += f32(q[(b * numHeads + h) * D + e]) * decodeE4m3(pool[k + e]);
    dot = warpSum(dot) * fp8Factor(pool[scales + row]);
    acc += Math.exp(dot * scale - lse[b * numHeads + h]) / perList;
  }
  if (lane === 0) scores[out] = acc;
}

export const pagedTokenScoresFp8Kernel = defineKernel<PagedSpec>({
  family: 'paged_token_scores_fp8',
  summary: "attention probability of every listed token of fp8 pages averaged over the list's heads (H2O/TOVA), from paged_decode_merge's lse",
  source: import.meta.url,
  kernel: pagedTokenScoresFp8,
  name: (s) => `paged_token_scores_fp8_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: (s) => [mul(arg('batch'), arg('numLists')), ceilDiv(mul(arg('maxPages'), s.pageSize), WARPS), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? checkPageSize(s.pageSize),
  unitKey: (s) => s.dtype,
});
