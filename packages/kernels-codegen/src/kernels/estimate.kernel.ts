/**
 * Importance estimate (Backend.estimate, core's estimateScore): for digest rows[i] and
 * every query head h, an upper bound of q_h . k over the page's keys, averaged over
 * each group of numHeads / groups consecutive heads: out [groups, numPages], f32.
 * One warp per page; lanes split the head dimension.
 */
import { blockIdx, f32, i64, local, offset, shflIdx, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product, type DType, type DigestVariant } from '../spec/matrix.js';
import { warpSum } from './common.js';
import { checkHeadDim, digestName } from './layout.js';

export interface EstimateSpec {
  readonly dtype: DType;
  readonly headDim: number;
  readonly variant: DigestVariant;
}

/** Warps per block, one page each (estimate_rows uses the same). */
export const WARPS = 4;

/**
 * KV heads whose digests a warp loads before it uses any (32 loads, 2 KB per warp in
 * f16 at head dim 128). A decode step's estimate is a read of every candidate's
 * digests (at 30k tokens and the 7B shape, 126 MB per layer for a batch of 4 in f32),
 * and loading one head at a time, as before, kept only that head's loads in flight:
 * estimate and select took 1.6 ms of a 9.9 ms step on an H200 against 0.9 ms for the
 * read at the copy rate. A chunk's loads have no branch between them.
 */
const KV_CHUNK = 4;

/**
 * One page's estimates (digest row `row`) for every head group, by one warp whose
 * lanes split the head dimension; lane 0 writes group g's at out[g * groupStride].
 * estimate and estimate_rows share it, so both give the same page the same bits.
 * Digests are stored in the KV dtype (page_digest rounds the box outward), so the
 * bound still holds and the read is half that of f32.
 */
export function estimatePage<T extends Float16>(
  spec: EstimateSpec,
  q: GlobalIn<T>,
  digests: GlobalIn<T>,
  row: i64,
  out: Global<f32>,
  groupStride: i32,
  numHeads: i32,
  numKvHeads: i32,
  groups: i32,
): void {
  const D = spec.headDim;
  const C = D / 32;
  const lane = threadIdx.x & 31;
  const perKv = numHeads / numKvHeads;
  const perGroup = numHeads / groups;
  // This lane's channels (lane + 32 j) of the chunk's upper and lower corners (sphere: centre, radius row).
  const hi = local<T>(KV_CHUNK * C);
  const lo = local<T>(KV_CHUNK * C);
  let h = 0;
  let inGroup = 0;
  let at = 0;
  let acc: f32 = 0;
  for (let kv0 = 0; kv0 < numKvHeads; kv0 += KV_CHUNK) {
    for (let u = 0; u < KV_CHUNK; u++) {
      // Past the last KV head the chunk reloads it (never used): no branch among the loads.
      const dig = (row * numKvHeads + Math.min(kv0 + u, numKvHeads - 1)) * (2 * D) + lane;
      for (let j = 0; j < C; j++) {
        hi[u * C + j] = digests[dig + j * 32];
        lo[u * C + j] = digests[dig + D + j * 32];
      }
    }
    for (let u = 0; u < KV_CHUNK; u++) {
      if (kv0 + u < numKvHeads) {
        // The sphere's radius is element 0 of its second row: lane 0's first lower value.
        const radius = spec.variant === 'sphere' ? shflIdx(f32(lo[u * C]), 0) : 0;
        for (let i = 0; i < perKv; i++) {
          let s: f32 = 0;
          let norm: f32 = 0;
          for (let j = 0; j < C; j++) {
            const qe = f32(q[h * D + lane + j * 32]);
            if (spec.variant === 'sphere') {
              s += qe * f32(hi[u * C + j]);
              norm += qe * qe;
            } else {
              s += Math.max(qe * f32(hi[u * C + j]), qe * f32(lo[u * C + j]));
            }
          }
          s = warpSum(s);
          if (spec.variant === 'sphere') s += Math.sqrt(warpSum(norm)) * radius;
          acc += s / perGroup;
          inGroup++;
          if (inGroup === perGroup) {
            if (lane === 0) out[at] = acc;
            at += groupStride;
            acc = 0;
            inGroup = 0;
          }
          h++;
        }
      }
    }
  }
}

export function estimatePages<T extends Float16>(
  spec: EstimateSpec,
  q: GlobalIn<T>,
  digests: GlobalIn<T>,
  rows: GlobalIn<i32>,
  out: Global<f32>,
  numPages: i32,
  numHeads: i32,
  numKvHeads: i32,
  groups: i32,
): void {
  const i = blockIdx.x * WARPS + (threadIdx.x >> 5);
  // Whole warps leave together, so the shuffles in estimatePage always see 32 lanes.
  if (i >= numPages) return;
  estimatePage(spec, q, digests, i64(rows[i]), offset(out, i), numPages, numHeads, numKvHeads, groups);
}

export const estimateKernel = defineKernel<EstimateSpec>({
  family: 'estimate',
  summary: 'page importance estimates from digests, averaged per head group (Backend.estimate)',
  source: import.meta.url,
  kernel: estimatePages,
  name: (s) => `estimate_${digestName(s.variant)}_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: () => [ceilDiv(arg('numPages'), WARPS), 1, 1],
  specs: (m) => product({ variant: m.digest, dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
