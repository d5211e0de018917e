/**
 * Importance estimate (Backend.estimate, core's estimateScore): for digest rows[i] and
 * every query head h, an upper bound of q_h . k over the page's keys, averaged over
 * each group of numHeads / groups consecutive heads: out [groups, numPages], f32.
 * One block per estimatePagesPerBlock pages; its warps split the (page, KV heads)
 * items, their lanes the head dimension (a power of two, as for paged decode).
 */
import {
  blockIdx,
  f32,
  i64,
  local,
  offset,
  shared,
  shflIdx,
  shflXor,
  syncthreads,
  threadIdx,
  vload,
  type Float16,
  type Global,
  type GlobalIn,
  type Local,
  type Shared,
  type i32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product, type DType, type DigestVariant } from '../spec/matrix.js';
import { checkPowerOfTwoHeadDim, digestName } from './layout.js';

export interface EstimateSpec {
  readonly dtype: DType;
  readonly headDim: number;
  readonly variant: DigestVariant;
}

/**
 * Warps per block: one block per page, its KV heads spread over the warps (estimate_rows
 * uses the same). Eight, taking a 7B-shape page's 32 KV heads in one round of loads,
 * were slower on an H200 (45 us against 35 for the read below, both
 * with the group sums of one thread each).
 */
export const WARPS = 4;

/**
 * The most query heads a page's block sums (its shared per-head sums); the CUDA
 * backend refuses a geometry with more (./launch exports it as ESTIMATE_MAX_HEADS).
 */
export const MAX_HEADS = 256;

/** Digest elements per load: 16 bytes of the KV dtype. */
const VEC = 8;

/** Query heads of one KV head whose box bounds share a shuffle tree at most (boxBounds' n). */
const MAX_CHUNK = 4;

/**
 * The sphere's bound of a query head over the centre and radius in this lane's
 * registers: each lane holds VEC channels of the query and of its head's digest, and the
 * D / VEC lanes of a head, from lane `first`, sum them in a shuffle tree. Every lane of
 * the warp must call it.
 */
function sphereBound<T extends Float16>(spec: EstimateSpec, qv: Local<T>, hi: Local<T>, lo: Local<T>, first: i32): f32 {
  const D = spec.headDim;
  let s: f32 = 0;
  let norm: f32 = 0;
  for (let j = 0; j < VEC; j++) {
    const qe = f32(qv[j]);
    s += qe * f32(hi[j]);
    norm += qe * qe;
  }
  for (let o = D / VEC / 2; o > 0; o >>= 1) {
    s += shflXor(s, o);
    norm += shflXor(norm, o);
  }
  // The radius is element 0 of the digest's second row: the head's first lane's first lower value.
  return s + Math.sqrt(norm) * shflIdx(f32(lo[0]), first);
}

/** This lane's share of a box bound: sum over its VEC channels of max(q * upper, q * lower). */
function boxPart<T extends Float16>(qv: Local<T>, hi: Local<f32>, lo: Local<f32>): f32 {
  let s: f32 = 0;
  for (let j = 0; j < VEC; j++) {
    const qe = f32(qv[j]);
    s += Math.max(qe * hi[j], qe * lo[j]);
  }
  return s;
}

/**
 * The box bounds of query heads i0 .. i0 + n - 1 of KV heads kvA and kvB (the warp's two
 * loads, their corners in f32 registers; a and b are the heads clamped to the last, which
 * every lane computes) go to sums[at + kv * perKv + i] for the real ones. The 2n
 * partial sums of a lane are added over the D / VEC lanes of a head in one transposed
 * shuffle tree: at each level a lane keeps half of its values and sends the other half
 * until one is left, so 2n heads take 2n - 1 + log2(D / VEC / 2n) shuffles, not
 * 2n log2(D / VEC) (8 against 32 for 4 query heads at head dim 128). A sum meets the
 * same partners in the same order as in a tree of its own, so its bits are those of
 * one head at a time. n is at most MAX_CHUNK, and 2n at most D / VEC.
 */
function boxBounds<T extends Float16>(
  spec: EstimateSpec,
  n: i32,
  q: GlobalIn<T>,
  hA: Local<f32>,
  lA: Local<f32>,
  hB: Local<f32>,
  lB: Local<f32>,
  a: i32,
  b: i32,
  kvA: i32,
  kvB: i32,
  numKvHeads: i32,
  perKv: i32,
  i0: i32,
  sums: Shared<f32>,
  at: i32,
): void {
  const D = spec.headDim;
  const lanesPerHead = D / VEC;
  const w = threadIdx.x % lanesPerHead;
  const qA = local<T>(VEC);
  const qB = local<T>(VEC);
  const part = local<f32>(2 * MAX_CHUNK);
  for (let c = 0; c < n; c++) {
    vload(qA, q, (a * perKv + i0 + c) * D + w * VEC);
    vload(qB, q, (b * perKv + i0 + c) * D + w * VEC);
    part[2 * c] = boxPart(qA, hA, lA);
    part[2 * c + 1] = boxPart(qB, hB, lB);
  }
  let m = 2 * n;
  for (let o = lanesPerHead / 2; o > 0; o >>= 1) {
    if (m > 1) {
      const h = m / 2;
      const upper = (w & o) !== 0;
      for (let k = 0; k < h; k++) {
        const send = upper ? part[k] : part[k + h];
        const keep = upper ? part[k + h] : part[k];
        part[k] = keep + shflXor(send, o);
      }
      m = h;
    } else {
      part[0] += shflXor(part[0], o);
    }
  }
  // Lane w now holds value w / per: head i0 + value / 2 of KV head a (even values) or b (odd).
  const per = lanesPerHead / (2 * n);
  if (w % per === 0) {
    const value = w / per;
    const kv = (value & 1) === 0 ? kvA : kvB;
    if (kv < numKvHeads) sums[at + kv * perKv + i0 + (value >> 1)] = part[0];
  }
}

/** Pages a block estimates at most (estimatePagesPerBlock). */
export const MAX_BLOCK_PAGES = 8;
/** Query-head sums a block holds in shared memory: its pages' heads together. */
export const BLOCK_SUMS = MAX_HEADS * MAX_BLOCK_PAGES;

/**
 * The pages one block estimates for a geometry: enough (KV head sets x pages) for two
 * rounds of its warps, at most MAX_BLOCK_PAGES and at most the shared sums' room. A
 * 7B-shape page (32 KV heads of 128) fills a block's two rounds alone, so 1; a
 * Llama-3-8B page (8 KV heads) is a quarter of that, so 4. With one page a block, the 8B
 * shape's estimate read its digests at 1.39 TB/s on an H100 (docs/BENCHMARKS.md, ninth
 * session): most of a block's time was its start, barrier and group sums, not its loads.
 */
export function estimatePagesPerBlock(numHeads: number, numKvHeads: number, headDim: number): number {
  const headsPerLoad = Math.max(1, 32 / (headDim / VEC));
  const sets = Math.ceil(numKvHeads / (2 * headsPerLoad));
  return Math.max(1, Math.min(Math.floor((2 * WARPS) / sets), MAX_BLOCK_PAGES, Math.floor(BLOCK_SUMS / numHeads)));
}

/**
 * The estimates of a block's `pages` pages (their digest rows in pageRows: a row, or -1
 * for a page that gets -Infinity, or -2 for one past the output) for every head group.
 * A head's digest (two rows of D) is read by D / VEC lanes in 16-byte loads, so a warp
 * reads 32 / (D / VEC) heads per load and two such sets before it uses any (2 KB in
 * flight per warp); the warps take successive (page, set of KV heads) items. Each query
 * head's bound goes to `sums`; then the lanes of a warp add each group's heads in a
 * shuffle tree, and one writes page p's estimate at out[p * pageStride + g *
 * groupStride]. A head's bound and a group's sum are the same arithmetic whatever the
 * page count, so estimate and estimate_rows, which share this, give a page the same
 * bits. Every thread of the block must call it (it synchronises the block).
 *
 * A decode step's estimate is a read of every candidate's digests: 63 MB per layer at
 * 30k tokens, the 7B shape, batch 4. On an H200 this layout reads it in 21 us (3.0 TB/s;
 * a plain read of the same bytes takes 17 us). The group sums were the bottleneck, not
 * the loads: with thread g adding its group's heads one by one the same read took 24 us
 * on random digests and 35 us in the kernel check's timing, and no layout of the loads
 * (a warp per page, 2- or 16-byte loads, 4 or 8 warps) changed that. Digests are stored
 * in the KV dtype (page_digest rounds the box outward), so the bound holds and the read
 * is half that of f32.
 */
export function estimateBlock<T extends Float16>(
  spec: EstimateSpec,
  q: GlobalIn<T>,
  digests: GlobalIn<T>,
  pageRows: Shared<i32>,
  pages: i32,
  out: Global<f32>,
  pageStride: i32,
  groupStride: i32,
  numHeads: i32,
  numKvHeads: i32,
  groups: i32,
  sums: Shared<f32>,
): void {
  const D = spec.headDim;
  const lanesPerHead = D / VEC;
  const headsPerLoad = 32 / lanesPerHead;
  const lane = threadIdx.x & 31;
  const warp = threadIdx.x >> 5;
  const sub = lane / lanesPerHead;
  const channel = (lane % lanesPerHead) * VEC;
  const first = lane - (lane % lanesPerHead);
  const perKv = numHeads / numKvHeads;
  const perGroup = numHeads / groups;
  const sets = (numKvHeads + 2 * headsPerLoad - 1) / (2 * headsPerLoad);
  const hiA = local<T>(VEC);
  const loA = local<T>(VEC);
  const hiB = local<T>(VEC);
  const loB = local<T>(VEC);
  // Query heads of one KV head whose box bounds share a shuffle tree (2 * chunk values fit a head's lanes).
  const chunk = Math.min(MAX_CHUNK, lanesPerHead / 2);
  // Item `item` is page item / sets, KV head set item % sets; a warp steps by WARPS items, so p and set advance without a division.
  let p = warp / sets;
  let set = warp % sets;
  for (let item = warp; item < pages * sets; item += WARPS) {
    const row = pageRows[p];
    // A whole warp takes an item, so skipping a page keeps the shuffles' lanes together.
    if (row >= 0) {
      const kv0 = set * 2 * headsPerLoad;
      // Heads past the last are clamped to it: every lane loads and computes (the shuffles need them all); only real heads are written.
      const kvA = kv0 + sub;
      const kvB = kv0 + headsPerLoad + sub;
      const a = Math.min(kvA, numKvHeads - 1);
      const b = Math.min(kvB, numKvHeads - 1);
      const digA = (i64(row) * numKvHeads + a) * (2 * D) + channel;
      const digB = (i64(row) * numKvHeads + b) * (2 * D) + channel;
      vload(hiA, digests, digA);
      vload(loA, digests, digA + D);
      vload(hiB, digests, digB);
      vload(loB, digests, digB + D);
      if (spec.variant === 'sphere') {
        const qA = local<T>(VEC);
        const qB = local<T>(VEC);
        for (let i = 0; i < perKv; i++) {
          vload(qA, q, (a * perKv + i) * D + channel);
          vload(qB, q, (b * perKv + i) * D + channel);
          const sA = sphereBound(spec, qA, hiA, loA, first);
          const sB = sphereBound(spec, qB, hiB, loB, first);
          if (channel === 0 && kvA < numKvHeads) sums[p * numHeads + kvA * perKv + i] = sA;
          if (channel === 0 && kvB < numKvHeads) sums[p * numHeads + kvB * perKv + i] = sB;
        }
      } else {
        // A box's corners in f32, converted once for all the query heads of their KV head.
        const hA = local<f32>(VEC);
        const lA = local<f32>(VEC);
        const hB = local<f32>(VEC);
        const lB = local<f32>(VEC);
        for (let j = 0; j < VEC; j++) {
          hA[j] = f32(hiA[j]);
          lA[j] = f32(loA[j]);
          hB[j] = f32(hiB[j]);
          lB[j] = f32(loB[j]);
        }
        if (perKv % chunk === 0) {
          for (let i0 = 0; i0 < perKv; i0 += chunk) {
            boxBounds(spec, chunk, q, hA, lA, hB, lB, a, b, kvA, kvB, numKvHeads, perKv, i0, sums, p * numHeads);
          }
        } else {
          for (let i = 0; i < perKv; i++) boxBounds(spec, 1, q, hA, lA, hB, lB, a, b, kvA, kvB, numKvHeads, perKv, i, sums, p * numHeads);
        }
      }
    }
    set += WARPS % sets;
    p += WARPS / sets;
    if (set >= sets) {
      set -= sets;
      p += 1;
    }
  }
  syncthreads();
  // `span` lanes (a power of two, up to a warp) add a group's heads in a shuffle tree: one
  // thread adding a page's 32 heads in turn held every block after its loads, and the
  // whole read took 24 us instead of 21.
  let span: i32 = 1;
  while (span * 2 <= perGroup && span < 32) span *= 2;
  const slots = pages * groups;
  for (let s0 = warp * (32 / span); s0 < slots; s0 += WARPS * (32 / span)) {
    const slot = s0 + lane / span;
    const p = slot / groups;
    const g = slot % groups;
    let acc: f32 = 0;
    if (slot < slots) for (let i = lane % span; i < perGroup; i += span) acc += sums[p * numHeads + g * perGroup + i];
    for (let o = span / 2; o > 0; o >>= 1) acc += shflXor(acc, o);
    if (lane % span === 0 && slot < slots) {
      const row = pageRows[p];
      if (row >= 0) out[p * pageStride + g * groupStride] = acc / perGroup;
      else if (row === -1) out[p * pageStride + g * groupStride] = -Infinity;
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
  pagesPerBlock: i32,
): void {
  const sums = shared<f32>(BLOCK_SUMS);
  const pageRows = shared<i32>(MAX_BLOCK_PAGES);
  const i0 = blockIdx.x * pagesPerBlock;
  if (threadIdx.x < pagesPerBlock) pageRows[threadIdx.x] = i0 + threadIdx.x < numPages ? rows[i0 + threadIdx.x] : -2;
  syncthreads();
  estimateBlock(spec, q, digests, pageRows, pagesPerBlock, offset(out, i0), 1, numPages, numHeads, numKvHeads, groups, sums);
}

export const estimateKernel = defineKernel<EstimateSpec>({
  family: 'estimate',
  summary: 'page importance estimates from digests, averaged per head group (Backend.estimate)',
  source: import.meta.url,
  kernel: estimatePages,
  name: (s) => `estimate_${digestName(s.variant)}_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: () => [ceilDiv(arg('numPages'), arg('pagesPerBlock')), 1, 1],
  specs: (m) => product({ variant: m.digest, dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkPowerOfTwoHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
