/**
 * Importance estimate (Backend.estimate, core's estimateScore): for digest rows[i] and
 * every query head h, an upper bound of q_h . k over the page's keys, averaged over
 * each group of numHeads / groups consecutive heads: out [groups, numPages], f32.
 * One warp per page; lanes split the head dimension.
 */
import { blockIdx, f32, i64, offset, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
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
 * One page's estimates (digest row `row`) for every head group, by one warp whose
 * lanes split the head dimension; lane 0 writes group g's at out[g * groupStride].
 * estimate and estimate_rows share it, so both give the same page the same bits.
 */
export function estimatePage<T extends Float16>(
  spec: EstimateSpec,
  q: GlobalIn<T>,
  digests: GlobalIn<f32>,
  row: i64,
  out: Global<f32>,
  groupStride: i32,
  numHeads: i32,
  numKvHeads: i32,
  groups: i32,
): void {
  const D = spec.headDim;
  const lane = threadIdx.x & 31;
  const perKv = numHeads / numKvHeads;
  const perGroup = numHeads / groups;
  // The KV head's digest and the group's output advance by counting, not by an integer
  // division per head (at the 8B shape that alone cut the kernel's time by a third).
  let dig = row * numKvHeads * (2 * D);
  let inKv = 0;
  let inGroup = 0;
  let at = 0;
  let acc: f32 = 0;
  for (let h = 0; h < numHeads; h++) {
    let s: f32 = 0;
    let norm: f32 = 0;
    for (let j = 0; j < D / 32; j++) {
      const e = lane + j * 32;
      const qe = f32(q[h * D + e]);
      if (spec.variant === 'sphere') {
        s += qe * digests[dig + e];
        norm += qe * qe;
      } else {
        s += Math.max(qe * digests[dig + e], qe * digests[dig + D + e]);
      }
    }
    s = warpSum(s);
    if (spec.variant === 'sphere') s += Math.sqrt(warpSum(norm)) * digests[dig + D];
    acc += s / perGroup;
    inGroup++;
    if (inGroup === perGroup) {
      if (lane === 0) out[at] = acc;
      at += groupStride;
      acc = 0;
      inGroup = 0;
    }
    inKv++;
    if (inKv === perKv) {
      dig += 2 * D;
      inKv = 0;
    }
  }
}

export function estimatePages<T extends Float16>(
  spec: EstimateSpec,
  q: GlobalIn<T>,
  digests: GlobalIn<f32>,
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
