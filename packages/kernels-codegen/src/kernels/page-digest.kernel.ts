/**
 * Page digests (Backend.digestPages, semantics of core's computeDigest): for each full
 * page slots[i] and KV head, a bounding volume of its keys written to digest row
 * rows[i] as [upper | lower] (cuboids) or [centre | radius, 0...] (sphere), f32.
 * One block per (page, KV head), one thread per dimension; the page's keys for that
 * dimension stay in registers between passes.
 */
import { blockIdx, f32, i64, local, shared, shflXor, syncthreads, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { blockMax } from './common.js';
import { checkHeadDim, checkPageSize, digestName, type DigestSpec } from './layout.js';

export function pageDigest<T extends Float16>(
  spec: DigestSpec,
  pool: GlobalIn<T>,
  slots: GlobalIn<i32>,
  rows: GlobalIn<i32>,
  digests: Global<f32>,
  numPages: i32,
  numKvHeads: i32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const d = threadIdx.x;
  const page = blockIdx.x;
  const h = blockIdx.y;
  if (page >= numPages) return;
  const keys = i64(slots[page]) * (2 * numKvHeads * P * D) + h * P * D;
  const k = local<f32>(P);
  let hi: f32 = -Infinity;
  let lo: f32 = Infinity;
  for (let t = 0; t < P; t++) {
    k[t] = f32(pool[keys + t * D + d]);
    hi = Math.max(hi, k[t]);
    lo = Math.min(lo, k[t]);
  }
  const c = (hi + lo) * 0.5;
  let upper = hi;
  let lower = lo;
  if (spec.variant === 'cuboid-mean') {
    // The box's half-width is the mean distance from the centre, not the extreme one.
    let r: f32 = 0;
    for (let t = 0; t < P; t++) r += Math.abs(k[t] - c);
    r = r / P;
    upper = c + r;
    lower = c - r;
  } else if (spec.variant === 'cuboid-center' || spec.variant === 'sphere') {
    upper = c;
    lower = c;
  }
  const out = (i64(rows[page]) * numKvHeads + h) * (2 * D);
  digests[out + d] = upper;
  if (spec.variant !== 'sphere') {
    digests[out + D + d] = lower;
    return;
  }
  // Sphere: radius = max over tokens of |k_t - c|; per-token squared distances are
  // summed per warp, then across warps in shared memory (fixed order: deterministic).
  const WARPS = D / 32;
  const partial = shared<f32>(WARPS * P);
  const scratch = shared<f32>(32);
  for (let t = 0; t < P; t++) {
    let e = (k[t] - c) * (k[t] - c);
    for (let o = 16; o > 0; o >>= 1) e += shflXor(e, o);
    if ((d & 31) === 0) partial[(d >> 5) * P + t] = e;
  }
  syncthreads();
  let dist: f32 = 0;
  if (d < P) {
    for (let w = 0; w < WARPS; w++) dist += partial[w * P + d];
  }
  const radius = blockMax(Math.sqrt(dist), scratch);
  digests[out + D + d] = d === 0 ? radius : 0;
}

export const pageDigestKernel = defineKernel<DigestSpec>({
  family: 'page_digest',
  summary: 'digest (bounding box or sphere of the keys) of full pages per KV head (Backend.digestPages)',
  source: import.meta.url,
  kernel: pageDigest,
  name: (s) => `page_digest_${digestName(s.variant)}_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: (s) => s.headDim,
  grid: () => [arg('numPages'), arg('numKvHeads'), 1],
  specs: (m) => product({ variant: m.digest, dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? checkPageSize(s.pageSize) ?? (s.pageSize > s.headDim ? 'page size must not exceed head dim' : undefined),
  unitKey: (s) => `${digestName(s.variant)}_${s.dtype}`,
});
