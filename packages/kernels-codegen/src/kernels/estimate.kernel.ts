/**
 * Importance estimate (Backend.estimate, core's estimateScore): for digest rows[i] and
 * every query head h, an upper bound of q_h . k over the page's keys, averaged over
 * each group of numHeads / groups consecutive heads: out [groups, numPages], f32.
 * One warp per page; lanes split the head dimension.
 */
import { blockIdx, f32, i64, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
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

const WARPS = 4;

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
  const D = spec.headDim;
  const lane = threadIdx.x & 31;
  const i = blockIdx.x * WARPS + (threadIdx.x >> 5);
  // Whole warps leave together, so the shuffles below always see 32 lanes.
  if (i >= numPages) return;
  const row = i64(rows[i]);
  const perKv = numHeads / numKvHeads;
  const perGroup = numHeads / groups;
  let acc: f32 = 0;
  for (let h = 0; h < numHeads; h++) {
    const dig = (row * numKvHeads + h / perKv) * (2 * D);
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
    if ((h + 1) % perGroup === 0) {
      if (lane === 0) out[(h / perGroup) * numPages + i] = acc;
      acc = 0;
    }
  }
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
