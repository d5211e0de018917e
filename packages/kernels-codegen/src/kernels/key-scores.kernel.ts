/**
 * Per-key attention statistics of a causal prefill (CausalAttentionArgs.keyScores),
 * averaged over heads, from the per-row log-sum-exp that causal_prefill writes:
 * - prefill_key_scores: the last query's attention (`last`: TOVA, ArkVale's prefill
 *   selection), one warp per key;
 * - prefill_key_sums: every query's attention added up (`sum`: H2O's accumulated
 *   attention), the column sums of the softmax: causal_prefill's tensor-core loop with
 *   keys and queries swapped (a second pass, as FlashAttention's backward forms dV),
 *   one sum per (head, key); prefill_key_sums_merge adds the heads up in order.
 */
import {
  blockDim,
  blockIdx,
  convert,
  cpAsync16,
  cpAsync4,
  cpAsyncCommit,
  cpAsyncWait,
  exp2,
  f32,
  fma,
  i64,
  local,
  shared,
  shflXor,
  syncthreads,
  threadIdx,
  vstore,
  type Float16,
  type Global,
  type GlobalIn,
  type Shared,
  type i32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product, type DType, type Matrix } from '../spec/matrix.js';
import { prefillBlockRows, rowFragments, tileScores, type PrefillSpec } from './causal-prefill.kernel.js';
import { warpSum } from './common.js';
import { checkHeadDim } from './layout.js';

export interface KeyScoresSpec {
  readonly dtype: DType;
  readonly headDim: number;
}

const WARPS = 4;

/**
 * Stages the QT = 2 BN queries from n0 of head h at sm[base] (two of causal_prefill's
 * key tiles: rows LD apart, rows past the end zeroed) and their log-sum-exps at
 * ls[lbase], +inf past the end so that those queries' terms are exp(-inf) = 0. Every
 * thread of the block calls it.
 */
function stageQueries<T extends Float16>(
  spec: PrefillSpec,
  sm: Shared<T>,
  base: i32,
  ls: Shared<f32>,
  lbase: i32,
  q: GlobalIn<T>,
  lse: GlobalIn<f32>,
  n0: i32,
  h: i32,
  numTokens: i32,
  numHeads: i32,
): void {
  const D = spec.headDim;
  const QT = spec.headDim > 128 ? 32 : 64;
  const LD = D + 8;
  const CH = D / 8;
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);
  for (let c = threadIdx.x; c < QT * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (n0 + r < numTokens) cpAsync16(sm, base + r * LD + col, q, (i64(n0 + r) * numHeads + h) * D + col);
    else vstore(sm, base + r * LD + col, zero);
  }
  const r = threadIdx.x;
  if (r < QT) {
    if (n0 + r < numTokens) cpAsync4(ls, lbase + r, lse, (n0 + r) * numHeads + h);
    else ls[lbase + r] = Infinity;
  }
}

/**
 * H2O's statistic of head h for the block's BM keys: partial[h][j] = sum over queries
 * i >= j of exp(q_i . k_j * scale - lse[i][h]), the softmax's column sum. causal_prefill
 * transposed: a warp holds 16 keys as A fragments (rowFragments), the queries from the
 * block's first key to the end stream through double-buffered cp.async stages of QT =
 * 2 BN (two tiles of BN per barrier, as causal_prefill's S and PV products are two
 * per tile) with their log-sum-exps, S^T = K Q^T comes from the same tileScores, and each
 * lane adds exp2(s * scale * log2 e - lse * log2 e) over its columns into two running
 * sums, one per key row, like causal_prefill's row sums l. Query tiles wholly before a
 * warp's keys are skipped, and the mask (query < key) applies only on tiles that cross
 * its diagonal. The four lanes of a key are added in a fixed order at the end, so the
 * result does not depend on timing. Blocks take key tiles in order, so the longest (the
 * first keys, which every query sees) start first.
 */
export function prefillKeySums<T extends Float16>(
  spec: PrefillSpec,
  q: GlobalIn<T>,
  k: GlobalIn<T>,
  lse: GlobalIn<f32>,
  partial: Global<f32>,
  numTokens: i32,
  numHeads: i32,
  numKvHeads: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const BM = spec.headDim > 128 ? 32 : 64;
  const BN = spec.headDim > 128 ? 16 : 32;
  const QT = 2 * BN;
  const LD = D + 8;
  const CH = D / 8;
  // One stage of QT queries; the K staging area overlaps the two stages.
  const STAGE = QT * LD;
  const SH = BM > 2 * QT ? BM * LD : 2 * STAGE;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const quad = lane & 3;
  const k0 = blockIdx.x * BM;
  const h = blockIdx.y;
  const kvh = h / (numHeads / numKvHeads);
  const sm = shared<T>(SH);
  const ls = shared<f32>(2 * QT);
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);

  // The block's keys, rows past the end zeroed; then their A fragments into registers.
  for (let c = tid; c < BM * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (k0 + r < numTokens) cpAsync16(sm, r * LD + col, k, (i64(k0 + r) * numKvHeads + kvh) * D + col);
    else vstore(sm, r * LD + col, zero);
  }
  cpAsyncCommit();
  cpAsyncWait(0);
  syncthreads();
  const kf = local<T>(D / 2);
  rowFragments(spec, kf, sm, warp, lane);
  syncthreads();

  const s = local<f32>(BN / 2);
  const bf = local<T>(8);
  // This lane sums keys `keyA` and `keyA + 8` of the warp's 16.
  const warpKey = k0 + warp * 16;
  const keyA = warpKey + (lane >> 2);
  const keyB = keyA + 8;
  const sl = scale * Math.LOG2E;
  let accA: f32 = 0;
  let accB: f32 = 0;
  // Queries before the block's first key see none of its keys (BM is a multiple of QT).
  const first = k0 / QT;
  const stages = (numTokens + QT - 1) / QT;

  // Stage 0 <- query tile `first`.
  stageQueries(spec, sm, 0, ls, 0, q, lse, k0, h, numTokens, numHeads);
  cpAsyncCommit();

  for (let t = first; t < stages; t++) {
    const st = (t - first) & 1;
    // Stage t has landed, and every warp is done with stage t - 1, whose buffer the next load reuses.
    cpAsyncWait(0);
    syncthreads();
    if (t + 1 < stages) {
      stageQueries(spec, sm, (st ^ 1) * STAGE, ls, (st ^ 1) * QT, q, lse, (t + 1) * QT, h, numTokens, numHeads);
      cpAsyncCommit();
    }
    for (let half = 0; half < 2; half++) {
      const n0 = t * QT + half * BN;
      // Tiles wholly before this warp's keys contribute nothing (warp-uniform skip).
      if (n0 + BN > warpKey) {
        // S^T = K Q^T for 16 keys x BN queries.
        tileScores(spec, s, kf, bf, sm, st * STAGE + half * BN * LD, lane);
        const masked = n0 < warpKey + 16;
        for (let nt = 0; nt < BN / 8; nt++) {
          for (let c = 0; c < 2; c++) {
            const col = nt * 8 + quad * 2 + c;
            const m = ls[st * QT + half * BN + col] * Math.LOG2E;
            let pA = exp2(fma(s[nt * 4 + c], sl, -m));
            let pB = exp2(fma(s[nt * 4 + 2 + c], sl, -m));
            // The causal mask: query n0 + col attends keys up to itself.
            if (masked) {
              if (n0 + col < keyA) pA = 0;
              if (n0 + col < keyB) pB = 0;
            }
            accA += pA;
            accB += pB;
          }
        }
      }
    }
  }

  accA += shflXor(accA, 1);
  accA += shflXor(accA, 2);
  accB += shflXor(accB, 1);
  accB += shflXor(accB, 2);
  if (quad === 0) {
    if (keyA < numTokens) partial[i64(h) * numTokens + keyA] = accA;
    if (keyB < numTokens) partial[i64(h) * numTokens + keyB] = accB;
  }
}

/** scores[j] = the mean over heads of partial[h][j], added in head order: prefill_key_sums' result. */
export function prefillKeySumsMerge(_spec: object, partial: GlobalIn<f32>, scores: Global<f32>, numTokens: i32, numHeads: i32): void {
  const j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= numTokens) return;
  let total: f32 = 0;
  for (let h = 0; h < numHeads; h++) total += partial[i64(h) * numTokens + j];
  scores[j] = total / f32(numHeads);
}

/** The last query's attention to key j, one warp per key. */
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
  const i = numTokens - 1;
  let acc: f32 = 0;
  for (let h = 0; h < numHeads; h++) {
    const qi = (i64(i) * numHeads + h) * D;
    const kj = (i64(j) * numKvHeads + h / perKv) * D;
    let dot: f32 = 0;
    for (let e = lane; e < D; e += 32) dot += f32(q[qi + e]) * f32(k[kj + e]);
    dot = warpSum(dot);
    acc += Math.exp(dot * scale - lse[i * numHeads + h]) / f32(numHeads);
  }
  if (lane === 0) scores[j] = acc;
}

const common = {
  source: import.meta.url,
  types: (s: KeyScoresSpec) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  specs: (m: Matrix) => product({ dtype: m.dtype, headDim: m.headDim }),
  validate: (s: KeyScoresSpec) => checkHeadDim(s.headDim),
  unitKey: (s: KeyScoresSpec) => s.dtype,
};

export const prefillKeyScoresKernel = defineKernel<KeyScoresSpec>({
  ...common,
  family: 'prefill_key_scores',
  summary: "per-key attention of the last query, averaged over heads, from causal_prefill's lse (keyScores: 'last')",
  kernel: prefillKeyScores,
  name: (s) => `prefill_key_scores_last_${s.dtype}_hd${s.headDim}`,
  grid: () => [ceilDiv(arg('numTokens'), WARPS), 1, 1],
});

export const prefillKeySumsKernel = defineKernel<KeyScoresSpec>({
  ...common,
  family: 'prefill_key_sums',
  summary:
    "per-key attention summed over every query, per head, from causal_prefill's lse: its tensor-core loop with keys and queries swapped (keyScores: 'sum'; prefill_key_sums_merge averages the heads)",
  kernel: prefillKeySums,
  name: (s) => `prefill_key_sums_${s.dtype}_hd${s.headDim}`,
  blockThreads: (s) => (prefillBlockRows(s.headDim) / 16) * 32,
  grid: (s) => [ceilDiv(arg('numTokens'), prefillBlockRows(s.headDim)), arg('numHeads'), 1],
  validate: (s) => checkHeadDim(s.headDim) ?? (s.headDim % 16 === 0 ? undefined : 'head dim must be a multiple of 16'),
});

const MERGE_THREADS = 256;

export const prefillKeySumsMergeKernel = defineKernel<Record<string, never>>({
  family: 'prefill_key_sums_merge',
  summary: "prefill_key_sums' per-head sums averaged over the heads, in head order (keyScores: 'sum')",
  source: import.meta.url,
  kernel: prefillKeySumsMerge,
  name: () => 'prefill_key_sums_merge',
  blockThreads: () => MERGE_THREADS,
  grid: () => [ceilDiv(arg('numTokens'), MERGE_THREADS), 1, 1],
  specs: () => [{}],
});
