/**
 * Per-key attention statistics of a causal prefill (CausalAttentionArgs.keyScores),
 * averaged over heads, recomputing q . k against the per-row log-sum-exp that
 * causal_prefill writes:
 * - prefill_key_scores: the last query's attention (`last`: TOVA, ArkVale's prefill
 *   selection), one warp per key;
 * - prefill_key_sums: every query's attention added up (`sum`: H2O's accumulated
 *   attention), O(T^2) dot products as in the reference, as tiles of a matrix product
 *   in shared memory, a block per KEYS keys.
 */
import { blockIdx, f32, i64, local, shared, syncthreads, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product, type DType, type Matrix } from '../spec/matrix.js';
import { warpSum } from './common.js';
import { checkHeadDim } from './layout.js';

export interface KeyScoresSpec {
  readonly dtype: DType;
  readonly headDim: number;
}

const WARPS = 4;
/** prefill_key_sums: keys per block, queries per tile, and head-dim elements staged at a time. */
const KEYS = 64;
const QUERIES = 32;
const CHUNK = 32;
/** Staged rows are CHUNK + 1 floats apart, so that the 16 keys a warp reads at once fall in 16 banks. */
const ROW = CHUNK + 1;

/**
 * The summed statistic of keys [j0, j0 + KEYS), one block of 128 threads: for every
 * head and every tile of QUERIES queries from j0 on (earlier queries see none of these
 * keys), the tile's q . k products are formed from CHUNK-wide slices of q and k staged
 * in shared memory as f32. Thread t holds keys j0 + t % 16 + 16b and queries
 * t / 16 + 8a of the tile (a, b < 4; so KEYS = 16 x 4 and QUERIES = 8 x 4): 16 products
 * in registers, eight loads from shared memory for every 16 multiply-adds. Each thread
 * adds exp(s * scale - lse) of its own pairs with i >= j; the eight threads of a key are
 * added at the end in a fixed order, so the result does not depend on timing. The
 * warp-per-key loop this replaces read q from global memory once per key: minutes for
 * 30k-token prompts at the 7B shape.
 */
export function prefillKeySums<T extends Float16>(
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
  const qs = shared<f32>(QUERIES * ROW);
  const ks = shared<f32>(KEYS * ROW);
  const part = shared<f32>(8 * KEYS);
  const D = spec.headDim;
  const t = threadIdx.x;
  const tk = t % 16;
  const tq = t / 16;
  const j0 = blockIdx.x * KEYS;
  const perKv = numHeads / numKvHeads;
  const acc = local<f32>(4);
  const s = local<f32>(16);
  for (let b = 0; b < 4; b++) acc[b] = 0;
  for (let h = 0; h < numHeads; h++) {
    const kvHead = h / perKv;
    for (let i0 = j0; i0 < numTokens; i0 += QUERIES) {
      for (let x = 0; x < 16; x++) s[x] = 0;
      for (let c = 0; c < D; c += CHUNK) {
        // The last chunk's products are read before the next chunk is staged over them.
        syncthreads();
        for (let e = t; e < QUERIES * CHUNK; e += WARPS * 32) {
          const i = i0 + e / CHUNK;
          qs[(e / CHUNK) * ROW + (e % CHUNK)] = i < numTokens ? f32(q[(i64(i) * numHeads + h) * D + c + (e % CHUNK)]) : 0;
        }
        for (let e = t; e < KEYS * CHUNK; e += WARPS * 32) {
          const j = j0 + e / CHUNK;
          ks[(e / CHUNK) * ROW + (e % CHUNK)] = j < numTokens ? f32(k[(i64(j) * numKvHeads + kvHead) * D + c + (e % CHUNK)]) : 0;
        }
        syncthreads();
        for (let d = 0; d < CHUNK; d++) {
          for (let a = 0; a < 4; a++) {
            const qv = qs[(tq + 8 * a) * ROW + d];
            for (let b = 0; b < 4; b++) s[a * 4 + b] += qv * ks[(tk + 16 * b) * ROW + d];
          }
        }
      }
      for (let a = 0; a < 4; a++) {
        const i = i0 + tq + 8 * a;
        if (i < numTokens) {
          const m = lse[i * numHeads + h];
          for (let b = 0; b < 4; b++) {
            if (j0 + tk + 16 * b <= i) acc[b] += Math.exp(s[a * 4 + b] * scale - m);
          }
        }
      }
    }
  }
  for (let b = 0; b < 4; b++) part[tq * KEYS + tk + 16 * b] = acc[b];
  syncthreads();
  if (t < KEYS && j0 + t < numTokens) {
    let total: f32 = 0;
    for (let g = 0; g < 8; g++) total += part[g * KEYS + t];
    scores[j0 + t] = total / f32(numHeads);
  }
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
  summary: "per-key attention summed over every query, averaged over heads, from causal_prefill's lse (keyScores: 'sum')",
  kernel: prefillKeySums,
  name: (s) => `prefill_key_sums_${s.dtype}_hd${s.headDim}`,
  grid: () => [ceilDiv(arg('numTokens'), KEYS), 1, 1],
});
