/**
 * Page digests (Backend.digestPages, semantics of core's computeDigest): for each full
 * page slots[i] and KV head, a bounding volume of its keys written to digest row
 * rows[i] as [upper | lower] (cuboids) or [centre | radius, 0...] (sphere), in the KV
 * dtype: half the bytes of f32 for every estimate that reads them. The volume is
 * rounded outward (upper corners and the radius up, lower corners down; the sphere's
 * radius measured from its stored centre), so it still contains every key.
 * One block per (page, KV head), one thread per dimension; the page's keys for that
 * dimension stay in registers between passes.
 *
 * page_digest_fp8 reads fp8 pages (fp8.ts): the same digests of the dequantized keys
 * (each code times its token's scale factor, exact in f32), written in T.
 */
import {
  bitsToFloat,
  blockIdx,
  convert,
  decodeE4m3,
  f32,
  floatBits,
  i32,
  i64,
  local,
  shared,
  shflXor,
  syncthreads,
  threadIdx,
  u32,
  type Float16,
  type Global,
  type GlobalIn,
  type u8,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { blockMax } from './common.js';
import { fp8Factor, fp8PageBytes, fp8ScaleBase } from './fp8.js';
import { checkHeadDim, checkPageSize, digestName, type DigestSpec } from './layout.js';

/** The spacing of T's values around x (from x's f32 exponent): what an outward rounding adds. */
function stepAt(spec: DigestSpec, x: f32): f32 {
  const e = i32((floatBits(x) >> 23) & 0xff);
  // f16 keeps 10 fraction bits, with steps of 2^-24 (biased exponent 103) below its
  // normal range; bf16 keeps 7, and 2^-126 stands in below f32's normal range.
  const bits = spec.dtype === 'f16' ? Math.max(e - 10, 103) : Math.max(e - 7, 1);
  return bitsToFloat(u32(bits) << 23);
}

/** The least T at or above x (x within T's range). */
function roundUp<T extends Float16>(spec: DigestSpec, x: f32): T {
  const r = convert<T>(x);
  return f32(r) >= x ? r : convert<T>(f32(r) + stepAt(spec, x));
}

/** The greatest T at or below x. */
function roundDown<T extends Float16>(spec: DigestSpec, x: f32): T {
  const r = convert<T>(x);
  return f32(r) <= x ? r : convert<T>(f32(r) - stepAt(spec, x));
}

export function pageDigest<T extends Float16>(
  spec: DigestSpec,
  pool: GlobalIn<T>,
  slots: GlobalIn<i32>,
  rows: GlobalIn<i32>,
  digests: Global<T>,
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
  const mid = (hi + lo) * 0.5;
  // The sphere is measured from the centre it stores.
  const c = spec.variant === 'sphere' ? f32(convert<T>(mid)) : mid;
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
  if (spec.variant !== 'sphere') {
    digests[out + d] = roundUp<T>(spec, upper);
    digests[out + D + d] = roundDown<T>(spec, lower);
    return;
  }
  digests[out + d] = convert<T>(c);
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
  digests[out + D + d] = d === 0 ? roundUp<T>(spec, radius) : convert<T>(0);
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

export function pageDigestFp8<T extends Float16>(
  spec: DigestSpec,
  pool: GlobalIn<u8>,
  slots: GlobalIn<i32>,
  rows: GlobalIn<i32>,
  digests: Global<T>,
  numPages: i32,
  numKvHeads: i32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const d = threadIdx.x;
  const page = blockIdx.x;
  const h = blockIdx.y;
  if (page >= numPages) return;
  const base = i64(slots[page]) * fp8PageBytes(spec, numKvHeads);
  const keys = base + h * P * D;
  const scales = base + fp8ScaleBase(spec, numKvHeads) + h * P;
  const k = local<f32>(P);
  let hi: f32 = -Infinity;
  let lo: f32 = Infinity;
  for (let t = 0; t < P; t++) {
    k[t] = decodeE4m3(pool[keys + t * D + d]) * fp8Factor(pool[scales + t]);
    hi = Math.max(hi, k[t]);
    lo = Math.min(lo, k[t]);
  }
  // From here on as page_digest.
  const mid = (hi + lo) * 0.5;
  const c = spec.variant === 'sphere' ? f32(convert<T>(mid)) : mid;
  let upper = hi;
  let lower = lo;
  if (spec.variant === 'cuboid-mean') {
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
  if (spec.variant !== 'sphere') {
    digests[out + d] = roundUp<T>(spec, upper);
    digests[out + D + d] = roundDown<T>(spec, lower);
    return;
  }
  digests[out + d] = convert<T>(c);
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
  digests[out + D + d] = d === 0 ? roundUp<T>(spec, radius) : convert<T>(0);
}

export const pageDigestFp8Kernel = defineKernel<DigestSpec>({
  family: 'page_digest_fp8',
  summary: 'digest of full fp8 pages per KV head, from the dequantized keys, in T (Backend.digestPages, kvDtype fp8)',
  source: import.meta.url,
  kernel: pageDigestFp8,
  name: (s) => `page_digest_fp8_${digestName(s.variant)}_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: (s) => s.headDim,
  grid: () => [arg('numPages'), arg('numKvHeads'), 1],
  specs: (m) => product({ variant: m.digest, dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? checkPageSize(s.pageSize) ?? (s.pageSize > s.headDim ? 'page size must not exceed head dim' : undefined),
  unitKey: (s) => `${digestName(s.variant)}_${s.dtype}`,
});
