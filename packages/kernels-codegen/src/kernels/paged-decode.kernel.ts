/**
 * Paged decode attention (Backend.pagedAttention), split over the sequence.
 *
 * A block serves `group` query heads that share one KV head and one page list, so it
 * loads each K/V vector once for all of them. Its tokens are the split blockIdx.y of
 * the list's n tokens. Threads are laid out FlashInfer-style: TX = headDim / 8 lanes
 * hold 8 dimensions each (one 16-byte load per token), TY = 32 / TX tokens per warp.
 * Each (thread row, head) keeps an online-softmax state (max m, sum l, output acc);
 * the rows merge in shared memory, and the split writes its normalised output and
 * log-sum-exp. `paged_decode_merge` combines the splits exactly:
 * O = sum_s e^(lse_s - M) O_s / sum_s e^(lse_s - M).
 */
import { blockIdx, convert, f32, i64, local, shared, shflXor, syncthreads, threadIdx, vload, type Float16, type GlobalIn, type Global, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv, mul } from '../spec/geometry.js';
import { product, type DType } from '../spec/matrix.js';
import { checkHeadDim, checkPageSize, checkPowerOfTwoHeadDim, VEC, type PagedSpec } from './layout.js';

export interface PagedDecodeSpec extends PagedSpec {
  /** Query heads per block: heads sharing one KV head and one page list. */
  readonly group: number;
}

const WARPS = 4;

export function pagedDecode<T extends Float16>(
  spec: PagedDecodeSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<T>,
  pageTable: GlobalIn<i32>,
  pageCounts: GlobalIn<i32>,
  lastPageLens: GlobalIn<i32>,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  batch: i32,
  numHeads: i32,
  numKvHeads: i32,
  numLists: i32,
  maxPages: i32,
  numSplits: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const G = spec.group;
  const TX = D / VEC;
  const TY = 32 / TX;
  const NY = WARPS * TY;
  const tid = threadIdx.x;
  const tx = tid % TX;
  const y = tid / TX;
  const headBlocks = numHeads / G;
  const b = blockIdx.x / headBlocks;
  const h0 = (blockIdx.x % headBlocks) * G;
  const split = blockIdx.y;
  if (b >= batch) return;
  const kvh = h0 / (numHeads / numKvHeads);
  const list = b * numLists + h0 / (numHeads / numLists);
  const n = (pageCounts[list] - 1) * P + lastPageLens[list];
  const chunk = (n + numSplits - 1) / numSplits;
  const start = split * chunk;
  const end = Math.min(n, start + chunk);
  const pageElems = i64(2 * numKvHeads * P * D);

  // Queries of the block's heads, pre-scaled, in registers.
  const kv = local<T>(VEC);
  const qv = local<f32>(G * VEC);
  for (let g = 0; g < G; g++) {
    vload(kv, q, ((b * numHeads + h0 + g) * D) + tx * VEC);
    for (let j = 0; j < VEC; j++) qv[g * VEC + j] = f32(kv[j]) * scale;
  }
  const acc = local<f32>(G * VEC);
  const m = local<f32>(G);
  const l = local<f32>(G);
  for (let g = 0; g < G; g++) {
    m[g] = -Infinity;
    l[g] = 0;
    for (let j = 0; j < VEC; j++) acc[g * VEC + j] = 0;
  }

  const vv = local<f32>(VEC);
  const s = local<f32>(G);
  // The loop bound is uniform across the warp: lanes past the end still shuffle.
  for (let base = start; base < end; base += NY) {
    const t = base + y;
    const valid = t < end;
    for (let g = 0; g < G; g++) s[g] = 0;
    if (valid) {
      const page = pageTable[list * maxPages + t / P];
      const k = i64(page) * pageElems + (kvh * P + t % P) * D + tx * VEC;
      vload(kv, pool, k);
      for (let g = 0; g < G; g++) {
        let dot: f32 = 0;
        for (let j = 0; j < VEC; j++) dot += qv[g * VEC + j] * f32(kv[j]);
        s[g] = dot;
      }
      vload(kv, pool, k + numKvHeads * P * D);
      for (let j = 0; j < VEC; j++) vv[j] = f32(kv[j]);
    }
    for (let g = 0; g < G; g++) {
      // Sum the partial dot products of the TX lanes that share this token.
      let dot = s[g];
      for (let o = TX / 2; o > 0; o >>= 1) dot += shflXor(dot, o);
      if (valid) {
        const mNew = Math.max(m[g], dot);
        const correction = Math.exp(m[g] - mNew);
        const p = Math.exp(dot - mNew);
        l[g] = l[g] * correction + p;
        for (let j = 0; j < VEC; j++) acc[g * VEC + j] = acc[g * VEC + j] * correction + p * vv[j];
        m[g] = mNew;
      }
    }
  }

  // Merge the NY token rows of each head through shared memory.
  const sO = shared<f32>(G * NY * D);
  const sM = shared<f32>(G * NY);
  const sL = shared<f32>(G * NY);
  for (let g = 0; g < G; g++) {
    for (let j = 0; j < VEC; j++) sO[(g * NY + y) * D + tx * VEC + j] = acc[g * VEC + j];
    if (tx === 0) {
      sM[g * NY + y] = m[g];
      sL[g * NY + y] = l[g];
    }
  }
  syncthreads();
  for (let i = tid; i < G * D; i += WARPS * 32) {
    const g = i / D;
    const d = i % D;
    let mMax: f32 = -Infinity;
    for (let r = 0; r < NY; r++) mMax = Math.max(mMax, sM[g * NY + r]);
    let sum: f32 = 0;
    let o: f32 = 0;
    if (mMax > -Infinity) {
      for (let r = 0; r < NY; r++) {
        const w = Math.exp(sM[g * NY + r] - mMax);
        sum += sL[g * NY + r] * w;
        o += sO[(g * NY + r) * D + d] * w;
      }
    }
    const row = (b * numHeads + h0 + g) * numSplits + split;
    partialOut[i64(row) * D + d] = sum > 0 ? o / sum : 0;
    if (d === 0) partialLse[row] = sum > 0 ? mMax + Math.log(sum) : -Infinity;
  }
}

export const pagedDecodeKernel = defineKernel<PagedDecodeSpec>({
  family: 'paged_decode',
  summary: 'paged decode attention, one split of the sequence per blockIdx.y; merge with paged_decode_merge (Backend.pagedAttention)',
  source: import.meta.url,
  kernel: pagedDecode,
  name: (s) => `paged_decode_${s.dtype}_hd${s.headDim}_ps${s.pageSize}_g${s.group}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: (s) => [ceilDiv(mul(arg('batch'), arg('numHeads')), s.group), arg('numSplits'), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize, group: m.group }),
  validate: (s) => checkPowerOfTwoHeadDim(s.headDim) ?? checkPageSize(s.pageSize) ?? (s.group >= 1 && s.group <= 16 ? undefined : `group ${s.group} must be 1..16`),
  unitKey: (s) => `${s.dtype}_hd${s.headDim}`,
});

export interface MergeSpec {
  readonly dtype: DType;
  readonly headDim: number;
}

/** Combines the splits of paged_decode: out [rows, headDim] in T, lse [rows] (natural log). */
export function pagedDecodeMerge<T extends Float16>(
  spec: MergeSpec,
  partialOut: GlobalIn<f32>,
  partialLse: GlobalIn<f32>,
  out: Global<T>,
  lse: Global<f32>,
  rows: i32,
  numSplits: i32,
): void {
  const D = spec.headDim;
  const row = blockIdx.x;
  if (row >= rows) return;
  let mMax: f32 = -Infinity;
  for (let s = 0; s < numSplits; s++) mMax = Math.max(mMax, partialLse[row * numSplits + s]);
  let sum: f32 = 0;
  for (let s = 0; s < numSplits; s++) sum += Math.exp(partialLse[row * numSplits + s] - mMax);
  for (let d = threadIdx.x; d < D; d += 64) {
    let o: f32 = 0;
    for (let s = 0; s < numSplits; s++) {
      o += Math.exp(partialLse[row * numSplits + s] - mMax) * partialOut[(i64(row) * numSplits + s) * D + d];
    }
    out[i64(row) * D + d] = convert<T>(o / sum);
  }
  if (threadIdx.x === 0) lse[row] = mMax + Math.log(sum);
}

export const pagedDecodeMergeKernel = defineKernel<MergeSpec>({
  family: 'paged_decode_merge',
  summary: 'merges the splits of paged_decode exactly by log-sum-exp; also writes each row\'s lse',
  source: import.meta.url,
  kernel: pagedDecodeMerge,
  name: (s) => `paged_decode_merge_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => 64,
  grid: () => [arg('rows'), 1, 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
