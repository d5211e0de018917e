/**
 * Paged decode attention (Backend.pagedAttention), split over the sequence.
 *
 * A block serves `group` query heads that share one KV head and one page list, so it
 * loads each K/V vector once for all of them. Its tokens are the split blockIdx.y of
 * the list's n tokens (splits are whole steps of the block, see below). Threads are
 * laid out FlashInfer-style: TX = headDim / 8 lanes hold 8 dimensions each (one 16-byte
 * load per token), TY = 32 / TX tokens per warp, NY = 4 * TY token rows per block.
 * A step covers U * NY tokens (U = 2 for groups up to 4, else 1). K/V reach shared
 * memory through a ring of S stages filled by cp.async, S - 1 steps ahead of the math:
 * each thread copies its rows' 16-byte K and V slices and later reads back only its
 * own slots, so no barrier is needed, and the loads in flight cost no registers
 * (tokens past the split's end are clamped to its last token and masked; page slots
 * are read a step before their copies are issued). Per step a row reduces its
 * U * group dot products with shuffles and updates its online-softmax state once
 * (max m, sum l, output acc in f32, in the log2 domain: queries are pre-scaled by
 * scale * log2(e)). The rows merge in shared
 * memory, and the split writes its normalised output and (natural) log-sum-exp.
 * `paged_decode_merge` combines the splits exactly:
 * O = sum_s e^(lse_s - M) O_s / sum_s e^(lse_s - M). `pagedDecodeSplits` gives the
 * splits: a fixed number of tokens each, whatever the batch.
 *
 * paged_decode_fp8 reads fp8 pages (fp8.ts) with the same layout of threads, steps
 * and splits: a lane's 8 dimensions of a token are 8 codes, copied by an 8-byte
 * cp.async. A step is then half the bytes of paged_decode's, and with the same stages
 * the kernel had half the bytes in flight and ran slower than paged_decode although it
 * reads half as much. So its ring is deeper: S = 6 for groups up to 2 (5 steps in
 * flight for paged_decode's 3), else 5 (4 for 2), about the same bytes in flight per
 * SM; the step and the splits stay paged_decode's. The token's K and V scale bytes
 * come through a small ring of their own: lanes 0 and 1 of the token's row copy the
 * 4-byte words holding them, read back their own and pass the factors to the row's
 * other lanes by shuffle (copied by every thread, the words took a third of the shared
 * memory). Shared memory per block at head dim 128: 29.5 KB for group 1 (28.7 KB
 * before, paged_decode 36.9 KB: 7 blocks per SM, paged_decode 6), 33.7 KB for 2, 37.8
 * KB for 4, 43.8 KB for 8. Alone on an H100 at 4 x 30k tokens and group 1 it takes 0.64
 * of paged_decode's time (1.10 before); at groups 4 and 8 it is bound by its arithmetic
 * (decoding, shuffles), not by bytes, and still takes 1.14 and 1.17 of it (1.37 and
 * 1.22 before). The codes are decoded exactly to f32; a token's K factor scales its dot
 * products and its V factor its softmax weight (powers of two: exact).
 */
import {
  atomicAdd,
  blockDim,
  blockIdx,
  convert,
  cpAsync16,
  cpAsync4,
  cpAsync8,
  cpAsyncCommit,
  cpAsyncWait,
  decodeE4m3,
  exp2,
  f32,
  i64,
  ldcg,
  local,
  offset,
  shared,
  shflIdx,
  shflXor,
  syncthreads,
  threadfence,
  threadIdx,
  vload,
  type Float16,
  type GlobalIn,
  type Local,
  type Shared,
  type Global,
  type i32,
  type u8,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv, mul } from '../spec/geometry.js';
import { product, type DType } from '../spec/matrix.js';
import { fp8Factor, fp8PageBytes, fp8ScaleBase } from './fp8.js';
import { checkHeadDim, checkPageSize, checkPowerOfTwoHeadDim, VEC, type PagedSpec } from './layout.js';

export interface PagedDecodeSpec extends PagedSpec {
  /** Query heads per block: heads sharing one KV head and one page list. */
  readonly group: number;
}

const WARPS = 4;
/** Threads of paged_decode_merge's block, as many as paged_decode's (both run mergeRow). */
const MERGE_THREADS = WARPS * 32;

/** Tokens per thread row and step (the kernel's U): fewer where the group's state and shared memory are larger. */
function unroll(group: number): number {
  return group <= 4 ? 2 : 1;
}

/** Tokens a block covers per step (splits are whole steps). */
export function pagedDecodeStep(spec: { readonly headDim: number; readonly group: number }): number {
  return ((WARPS * 32) / (spec.headDim / VEC)) * unroll(spec.group);
}

export function pagedDecode<T extends Float16>(
  spec: PagedDecodeSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<T>,
  pageTable: GlobalIn<i32>,
  pageCounts: GlobalIn<i32>,
  lastPageLens: GlobalIn<i32>,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  out: Global<T>,
  lse: Global<f32>,
  counters: Global<i32>,
  batch: i32,
  numHeads: i32,
  numKvHeads: i32,
  numLists: i32,
  maxPages: i32,
  numSplits: i32,
  splitTokens: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const G = spec.group;
  const TX = D / VEC;
  const TY = 32 / TX;
  const NY = WARPS * TY;
  const U = spec.group <= 4 ? 2 : 1;
  const S = spec.group <= 2 ? 4 : 3;
  const THREADS = WARPS * 32;
  const STEP = NY * U;
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
  // Splits of a fixed number of tokens (pagedDecodeSplits, whole steps), whatever
  // the batch: a row's sums are then ordered the same in any batch. Splits past the
  // row's end hold nothing (lse -inf, which the merge weighs at 0).
  const chunk = splitTokens;
  const start = split * chunk;
  const end = Math.min(n, start + chunk);
  const pageElems = i64(2 * numKvHeads * P * D);
  const vOffset = numKvHeads * P * D;

  // Queries of the block's heads, pre-scaled (log2 domain), in registers.
  const kv = local<T>(VEC);
  const qv = local<f32>(G * VEC);
  const qs = scale * Math.LOG2E;
  for (let g = 0; g < G; g++) {
    vload(kv, q, (b * numHeads + h0 + g) * D + tx * VEC);
    for (let j = 0; j < VEC; j++) qv[g * VEC + j] = f32(kv[j]) * qs;
  }
  const acc = local<f32>(G * VEC);
  const m = local<f32>(G);
  const l = local<f32>(G);
  for (let g = 0; g < G; g++) {
    m[g] = -Infinity;
    l[g] = 0;
    for (let j = 0; j < VEC; j++) acc[g * VEC + j] = 0;
  }

  const vt = local<T>(VEC);
  const vf = local<f32>(VEC);
  const s = local<f32>(U * G);
  // A ring of S stages in shared memory, [stage][u][K|V][thread][VEC]: each thread
  // copies (cp.async) and later reads back only its own 16-byte slots, so no barrier
  // is needed; S - 1 steps of K/V are in flight while a step computes.
  const ring = shared<T>(S * U * 2 * THREADS * VEC);
  const steps = end > start ? (end - start + STEP - 1) / STEP : 0;
  // Page slots of the row's U tokens for the next step to copy.
  const pg = local<i32>(U);
  if (steps > 0) {
    for (let u = 0; u < U; u++) pg[u] = pageTable[list * maxPages + Math.min(start + u * NY + y, end - 1) / P];
  }
  for (let i = 0; i < S - 1; i++) {
    if (i < steps) {
      for (let u = 0; u < U; u++) {
        const t = Math.min(start + i * STEP + u * NY + y, end - 1);
        const k = i64(pg[u]) * pageElems + (kvh * P + (t % P)) * D + tx * VEC;
        cpAsync16(ring, ((i * U + u) * 2 * THREADS + tid) * VEC, pool, k);
        cpAsync16(ring, (((i * U + u) * 2 + 1) * THREADS + tid) * VEC, pool, k + vOffset);
      }
      for (let u = 0; u < U; u++) pg[u] = pageTable[list * maxPages + Math.min(start + (i + 1) * STEP + u * NY + y, end - 1) / P];
    }
    cpAsyncCommit();
  }
  // The loop bound is uniform across the warp: lanes past the end still shuffle.
  for (let i = 0; i < steps; i++) {
    const base = start + i * STEP;
    // Copy step i + S - 1 into the stage step i - 1 used (tokens clamped to the
    // split, masked when used), then wait for step i and compute it.
    const next = i + S - 1;
    if (next < steps) {
      const ns = next % S;
      for (let u = 0; u < U; u++) {
        const t = Math.min(start + next * STEP + u * NY + y, end - 1);
        const k = i64(pg[u]) * pageElems + (kvh * P + (t % P)) * D + tx * VEC;
        cpAsync16(ring, ((ns * U + u) * 2 * THREADS + tid) * VEC, pool, k);
        cpAsync16(ring, (((ns * U + u) * 2 + 1) * THREADS + tid) * VEC, pool, k + vOffset);
      }
      for (let u = 0; u < U; u++) pg[u] = pageTable[list * maxPages + Math.min(start + (next + 1) * STEP + u * NY + y, end - 1) / P];
    }
    cpAsyncCommit();
    cpAsyncWait(S - 1);
    const st = i % S;
    for (let u = 0; u < U; u++) {
      vload(kv, ring, ((st * U + u) * 2 * THREADS + tid) * VEC);
      for (let g = 0; g < G; g++) {
        let dot: f32 = 0;
        for (let j = 0; j < VEC; j++) dot += qv[g * VEC + j] * f32(kv[j]);
        s[u * G + g] = dot;
      }
    }
    // Sum the partial dot products of the TX lanes that share each token.
    for (let r = 0; r < U * G; r++) {
      for (let o = TX / 2; o > 0; o >>= 1) s[r] += shflXor(s[r], o);
    }
    // No branch on the row's validity: a row past the end keeps its state (every
    // token masked, correction 1).
    for (let g = 0; g < G; g++) {
      let mNew = m[g];
      for (let u = 0; u < U; u++) {
        if (base + u * NY + y < end) mNew = Math.max(mNew, s[u * G + g]);
      }
      const correction: f32 = mNew > -Infinity ? exp2(m[g] - mNew) : 1;
      l[g] = l[g] * correction;
      for (let j = 0; j < VEC; j++) acc[g * VEC + j] = acc[g * VEC + j] * correction;
      m[g] = mNew;
    }
    for (let u = 0; u < U; u++) {
      const valid = base + u * NY + y < end;
      vload(vt, ring, (((st * U + u) * 2 + 1) * THREADS + tid) * VEC);
      for (let j = 0; j < VEC; j++) vf[j] = f32(vt[j]);
      for (let g = 0; g < G; g++) {
        const p: f32 = valid ? exp2(s[u * G + g] - m[g]) : 0;
        l[g] = l[g] + p;
        for (let j = 0; j < VEC; j++) acc[g * VEC + j] = acc[g * VEC + j] + p * vf[j];
      }
    }
  }

  const sO = shared<f32>(G * NY * D);
  const sM = shared<f32>(G * NY);
  const sL = shared<f32>(G * NY);
  const ticket = shared<i32>(1);
  finishSplit(spec, acc, m, l, sO, sM, sL, ticket, partialOut, partialLse, out, lse, counters, b, h0, split, numHeads, numSplits);
}

/**
 * The end of a split of paged_decode (and paged_decode_fp8): the NY token rows of each
 * head merge through shared memory into the split's partial output and (natural)
 * log-sum-exp. Then the split counts itself done for its block of G heads in
 * `counters` (after a fence, so that its partials are seen first), and the last of the
 * group's splits to finish merges all of them (mergeRows: paged_decode_merge's sums,
 * split by split in order, whichever split comes last) into `out` and `lse`, and sets
 * the count back to 0 for the next launch. The merge's own launch is gone: 5.5 us a
 * layer for 8 splits at 4 rows x 8 KV heads (H100, docs/BENCHMARKS.md, ninth session).
 */
function finishSplit<T extends Float16>(
  spec: PagedDecodeSpec,
  acc: Local<f32>,
  m: Local<f32>,
  l: Local<f32>,
  sO: Shared<f32>,
  sM: Shared<f32>,
  sL: Shared<f32>,
  ticket: Shared<i32>,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  out: Global<T>,
  lse: Global<f32>,
  counters: Global<i32>,
  b: i32,
  h0: i32,
  split: i32,
  numHeads: i32,
  numSplits: i32,
): void {
  const D = spec.headDim;
  const G = spec.group;
  const TX = D / VEC;
  const NY = WARPS * (32 / TX);
  const tid = threadIdx.x;
  const tx = tid % TX;
  const y = tid / TX;
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
        const w = exp2(sM[g * NY + r] - mMax);
        sum += sL[g * NY + r] * w;
        o += sO[(g * NY + r) * D + d] * w;
      }
    }
    const row = (b * numHeads + h0 + g) * numSplits + split;
    partialOut[i64(row) * D + d] = sum > 0 ? o / sum : 0;
    if (d === 0) partialLse[row] = sum > 0 ? (mMax + Math.log2(sum)) * Math.LN2 : -Infinity;
  }
  threadfence();
  syncthreads();
  if (tid === 0) ticket[0] = atomicAdd(counters, blockIdx.x, 1);
  syncthreads();
  if (ticket[0] === numSplits - 1) {
    // Every other split fenced its partials before counting itself.
    threadfence();
    // A bound nvcc cannot fold to G (numHeads - h0 >= G): the merge stays one loop, not G
    // inlined copies of its 32 unrolled loads (which more than doubled the unit's build).
    mergeRows(spec, partialOut, partialLse, out, lse, b * numHeads + h0, Math.min(G, numHeads - h0), numSplits);
    if (tid === 0) counters[blockIdx.x] = 0;
  }
}

/** Tokens a split of paged_decode covers: a fixed number, so that a row's sums do not depend on its batch. */
export const PAGED_DECODE_SPLIT_TOKENS = 512;

/**
 * The splits of paged_decode over lists of at most `tokens` tokens: one per
 * PAGED_DECODE_SPLIT_TOKENS (a multiple of every kernel's step), whatever the batch, so
 * that a request's attention is the same alone and in any batch (the products are
 * padded to fixed row counts for the same reason). The split count used to fill one
 * wave of the GPU from the batch; 512 tokens give the same splits at ArkVale's budgets
 * (4 at batch 4 with 2048 tokens) and the best of those measured at batch 8 with 4096
 * tokens on an H200 (8 splits 47.5 us, 12 splits 49.4 us, 32 splits 55.3 us).
 */
export function pagedDecodeSplits(o: { readonly tokens: number; readonly splitTokens?: number }): { readonly splits: number; readonly splitTokens: number } {
  const splitTokens = o.splitTokens ?? PAGED_DECODE_SPLIT_TOKENS;
  if (!Number.isInteger(splitTokens) || splitTokens < 32 || splitTokens % 32 !== 0) {
    throw new RangeError(`paged_decode's split must be a positive multiple of 32 tokens (every kernel's step), got ${splitTokens}`);
  }
  return { splits: Math.max(1, Math.ceil(o.tokens / splitTokens)), splitTokens };
}

/** Split tokens that cut lists of `tokens` into at most `splits` splits of whole 32-token steps (a multiple of every kernel's step): for checks that run several splits on short lists. */
export function splitTokensFor(tokens: number, splits: number): number {
  return Math.max(32, Math.ceil(tokens / splits / 32) * 32);
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
  validate: (s) =>
    checkPowerOfTwoHeadDim(s.headDim) ?? checkPageSize(s.pageSize) ?? (s.group >= 1 && s.group <= 16 ? undefined : `group ${s.group} must be 1..16`),
  unitKey: (s) => `${s.dtype}_hd${s.headDim}`,
});

export function pagedDecodeFp8<T extends Float16>(
  spec: PagedDecodeSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<u8>,
  pageTable: GlobalIn<i32>,
  pageCounts: GlobalIn<i32>,
  lastPageLens: GlobalIn<i32>,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  out: Global<T>,
  lse: Global<f32>,
  counters: Global<i32>,
  batch: i32,
  numHeads: i32,
  numKvHeads: i32,
  numLists: i32,
  maxPages: i32,
  numSplits: i32,
  splitTokens: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const G = spec.group;
  const TX = D / VEC;
  const TY = 32 / TX;
  const NY = WARPS * TY;
  const U = spec.group <= 4 ? 2 : 1;
  // A deeper ring than paged_decode's (S of 4 or 3): a step here is half the bytes, so
  // S - 1 = 5 or 4 steps in flight keep about as many bytes in flight per SM.
  const S = spec.group <= 2 ? 6 : 5;
  const THREADS = WARPS * 32;
  const STEP = NY * U;
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
  const chunk = splitTokens;
  const start = split * chunk;
  const end = Math.min(n, start + chunk);
  const pageBytes = i64(fp8PageBytes(spec, numKvHeads));
  const vOffset = numKvHeads * P * D;
  const scaleBase = fp8ScaleBase(spec, numKvHeads);

  const qt = local<T>(VEC);
  const qv = local<f32>(G * VEC);
  const qs = scale * Math.LOG2E;
  for (let g = 0; g < G; g++) {
    vload(qt, q, (b * numHeads + h0 + g) * D + tx * VEC);
    for (let j = 0; j < VEC; j++) qv[g * VEC + j] = f32(qt[j]) * qs;
  }
  const acc = local<f32>(G * VEC);
  const m = local<f32>(G);
  const l = local<f32>(G);
  for (let g = 0; g < G; g++) {
    m[g] = -Infinity;
    l[g] = 0;
    for (let j = 0; j < VEC; j++) acc[g * VEC + j] = 0;
  }

  const kc = local<u8>(VEC);
  const vc = local<u8>(VEC);
  const kf = local<f32>(VEC);
  const vf = local<f32>(VEC);
  const s = local<f32>(U * G);
  const vScale = local<f32>(U);
  // The ring of codes, [stage][u][K|V][thread][VEC] bytes (each thread reads back only
  // what it copied, as in paged_decode), and of the 4-byte words holding each row's K
  // and V scale bytes, [stage][u][K|V][row][4]: lane 0 of the row's TX lanes copies
  // the K word, lane 1 the V word, and each reads back its own and passes the factor
  // to the others by shuffle, so the scales cost 8 bytes of shared memory per row
  // rather than 8 per thread.
  const ring = shared<u8>(S * U * 2 * THREADS * VEC);
  const words = shared<u8>(S * U * 2 * NY * 4);
  // The K (lane 0) or V (lane 1) scale byte of a token slot is this many bytes on.
  const kvScale = tx * numKvHeads * P;
  const steps = end > start ? (end - start + STEP - 1) / STEP : 0;
  const pg = local<i32>(U);
  if (steps > 0) {
    for (let u = 0; u < U; u++) pg[u] = pageTable[list * maxPages + Math.min(start + u * NY + y, end - 1) / P];
  }
  for (let i = 0; i < S - 1; i++) {
    if (i < steps) {
      for (let u = 0; u < U; u++) {
        const t = Math.min(start + i * STEP + u * NY + y, end - 1);
        const page = i64(pg[u]) * pageBytes;
        const k = page + (kvh * P + (t % P)) * D + tx * VEC;
        cpAsync8(ring, ((i * U + u) * 2 * THREADS + tid) * VEC, pool, k);
        cpAsync8(ring, (((i * U + u) * 2 + 1) * THREADS + tid) * VEC, pool, k + vOffset);
        if (tx < 2) cpAsync4(words, (((i * U + u) * 2 + tx) * NY + y) * 4, pool, page + (scaleBase + ((kvh * P + (t % P) + kvScale) >> 2) * 4));
      }
      for (let u = 0; u < U; u++) pg[u] = pageTable[list * maxPages + Math.min(start + (i + 1) * STEP + u * NY + y, end - 1) / P];
    }
    cpAsyncCommit();
  }
  for (let i = 0; i < steps; i++) {
    const base = start + i * STEP;
    const next = i + S - 1;
    if (next < steps) {
      const ns = next % S;
      for (let u = 0; u < U; u++) {
        const t = Math.min(start + next * STEP + u * NY + y, end - 1);
        const page = i64(pg[u]) * pageBytes;
        const k = page + (kvh * P + (t % P)) * D + tx * VEC;
        cpAsync8(ring, ((ns * U + u) * 2 * THREADS + tid) * VEC, pool, k);
        cpAsync8(ring, (((ns * U + u) * 2 + 1) * THREADS + tid) * VEC, pool, k + vOffset);
        if (tx < 2) cpAsync4(words, (((ns * U + u) * 2 + tx) * NY + y) * 4, pool, page + (scaleBase + ((kvh * P + (t % P) + kvScale) >> 2) * 4));
      }
      for (let u = 0; u < U; u++) pg[u] = pageTable[list * maxPages + Math.min(start + (next + 1) * STEP + u * NY + y, end - 1) / P];
    }
    cpAsyncCommit();
    cpAsyncWait(S - 1);
    const st = i % S;
    for (let u = 0; u < U; u++) {
      // The token whose codes this slot holds (clamped as when copied); lanes 0 and 1
      // read its K and V scale bytes from their words, and every lane takes both.
      const sb = kvh * P + (Math.min(base + u * NY + y, end - 1) % P) + kvScale;
      const factor: f32 = tx < 2 ? fp8Factor(words[(((st * U + u) * 2 + tx) * NY + y) * 4 + (sb & 3)]) : 1;
      const kScale = shflIdx(factor, 0, TX);
      vScale[u] = shflIdx(factor, 1, TX);
      vload(kc, ring, ((st * U + u) * 2 * THREADS + tid) * VEC);
      for (let j = 0; j < VEC; j++) kf[j] = decodeE4m3(kc[j]);
      for (let g = 0; g < G; g++) {
        let dot: f32 = 0;
        for (let j = 0; j < VEC; j++) dot += qv[g * VEC + j] * kf[j];
        s[u * G + g] = dot * kScale;
      }
    }
    for (let r = 0; r < U * G; r++) {
      for (let o = TX / 2; o > 0; o >>= 1) s[r] += shflXor(s[r], o);
    }
    for (let g = 0; g < G; g++) {
      let mNew = m[g];
      for (let u = 0; u < U; u++) {
        if (base + u * NY + y < end) mNew = Math.max(mNew, s[u * G + g]);
      }
      const correction: f32 = mNew > -Infinity ? exp2(m[g] - mNew) : 1;
      l[g] = l[g] * correction;
      for (let j = 0; j < VEC; j++) acc[g * VEC + j] = acc[g * VEC + j] * correction;
      m[g] = mNew;
    }
    for (let u = 0; u < U; u++) {
      const valid = base + u * NY + y < end;
      vload(vc, ring, (((st * U + u) * 2 + 1) * THREADS + tid) * VEC);
      for (let j = 0; j < VEC; j++) vf[j] = decodeE4m3(vc[j]);
      for (let g = 0; g < G; g++) {
        const p: f32 = valid ? exp2(s[u * G + g] - m[g]) : 0;
        l[g] = l[g] + p;
        // The token's V factor rides on its weight: p * 2^e * code, exact scaling.
        const pv = p * vScale[u];
        for (let j = 0; j < VEC; j++) acc[g * VEC + j] = acc[g * VEC + j] + pv * vf[j];
      }
    }
  }

  const sO = shared<f32>(G * NY * D);
  const sM = shared<f32>(G * NY);
  const sL = shared<f32>(G * NY);
  const ticket = shared<i32>(1);
  finishSplit(spec, acc, m, l, sO, sM, sL, ticket, partialOut, partialLse, out, lse, counters, b, h0, split, numHeads, numSplits);
}

export const pagedDecodeFp8Kernel = defineKernel<PagedDecodeSpec>({
  family: 'paged_decode_fp8',
  summary:
    'paged decode attention over fp8 pages (dequantized on load), one split per blockIdx.y; merge with paged_decode_merge (Backend.pagedAttention, kvDtype fp8)',
  source: import.meta.url,
  kernel: pagedDecodeFp8,
  name: (s) => `paged_decode_fp8_${s.dtype}_hd${s.headDim}_ps${s.pageSize}_g${s.group}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: (s) => [ceilDiv(mul(arg('batch'), arg('numHeads')), s.group), arg('numSplits'), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize, group: m.group }),
  validate: (s) =>
    checkPowerOfTwoHeadDim(s.headDim) ?? checkPageSize(s.pageSize) ?? (s.group >= 1 && s.group <= 16 ? undefined : `group ${s.group} must be 1..16`),
  unitKey: (s) => `${s.dtype}_hd${s.headDim}`,
});

export interface MergeSpec {
  readonly dtype: DType;
  readonly headDim: number;
}

/**
 * Combines the splits of a split attention kernel: out [rows, headDim] in T, lse [rows]
 * (natural log). paged_prefill's splits come here; paged_decode's last split of a group
 * runs the same mergeRows itself (finishSplit). The lanes of each warp read 32 splits' lse at once and pass each split's weight round
 * by shuffles, so a split costs no dependent load; the sums run over the splits in
 * order, as one thread adding them would. Reading them split by split made each
 * launch about 6.8 us (32 rows of 4 splits, a batch-1 step at the 7B shape, H100).
 * A round's 32 partial outputs are loaded into registers, unconditionally, before any
 * is added: with the load inside the add's guard, each split's load waited for the one
 * before, and a 128k layer's 257 splits took 105 us to merge (4 x 32 rows, H100,
 * docs/BENCHMARKS.md, ninth session).
 */
export function pagedDecodeMerge<T extends Float16>(
  spec: MergeSpec,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  out: Global<T>,
  lse: Global<f32>,
  rows: i32,
  numSplits: i32,
): void {
  const row = blockIdx.x;
  if (row >= rows) return;
  mergeRows(spec, partialOut, partialLse, out, lse, row, 1, numSplits);
}

/**
 * Merges the splits of rows first..first + count - 1 into out and lse, one row after
 * another, by every thread of the block (whole
 * warps, MERGE_THREADS or more: a thread takes dimensions t, t + blockDim.x, ...).
 * paged_decode's last split calls it on partials that other blocks of its launch
 * wrote, so they are read through L2 only (ldcg), neither through the read-only
 * cache nor through an SM's L1, which other SMs' writes do not update. A
 * dimension's sums run over the splits in order whatever the block's size, so
 * paged_decode's merge and paged_decode_merge give the same bits.
 */
function mergeRows<T extends Float16>(
  spec: MergeSpec,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  out: Global<T>,
  lse: Global<f32>,
  first: i32,
  count: i32,
  numSplits: i32,
): void {
  for (let row = first; row < first + count; row++) mergeRow(spec, partialOut, partialLse, out, lse, row, numSplits);
}

function mergeRow<T extends Float16>(
  spec: MergeSpec,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  out: Global<T>,
  lse: Global<f32>,
  row: i32,
  numSplits: i32,
): void {
  const D = spec.headDim;
  // Dimensions per thread (MERGE_THREADS or more).
  const ND = (D + MERGE_THREADS - 1) / MERGE_THREADS;
  const threads = blockDim.x;
  const lane = threadIdx.x & 31;
  const base = row * numSplits;
  let mMax: f32 = -Infinity;
  for (let s0 = 0; s0 < numSplits; s0 += 32) {
    if (s0 + lane < numSplits) mMax = Math.max(mMax, ldcg(partialLse, base + s0 + lane));
  }
  for (let o = 16; o > 0; o >>= 1) mMax = Math.max(mMax, shflXor(mMax, o));
  const acc = local<f32>(ND);
  for (let e = 0; e < ND; e++) acc[e] = 0;
  let sum: f32 = 0;
  const parts = local<f32>(32 * ND);
  for (let s0 = 0; s0 < numSplits; s0 += 32) {
    const w: f32 = s0 + lane < numSplits ? Math.exp(ldcg(partialLse, base + s0 + lane) - mMax) : 0;
    const n = Math.min(32, numSplits - s0);
    // The round's first partial output: 32-bit offsets from it (64-bit ones for each load
    // made nvcc take 0.4 s more per kernel that inlines this).
    const round = offset(partialOut, (i64(base) + s0) * D);
    // Past the round's last split (or the head dim) a lane loads the last one again: no
    // branch around any load, so they can all be in flight; those values are never added.
    for (let j = 0; j < 32; j++) {
      for (let e = 0; e < ND; e++) parts[j * ND + e] = ldcg(round, Math.min(j, n - 1) * D + Math.min(threadIdx.x + threads * e, D - 1));
    }
    for (let j = 0; j < 32; j++) {
      const wj = shflIdx(w, j);
      if (j < n) {
        sum += wj;
        for (let e = 0; e < ND; e++) {
          const d = threadIdx.x + threads * e;
          if (d < D) acc[e] += wj * parts[j * ND + e];
        }
      }
    }
  }
  for (let e = 0; e < ND; e++) {
    const d = threadIdx.x + threads * e;
    if (d < D) out[i64(row) * D + d] = convert<T>(acc[e] / sum);
  }
  if (threadIdx.x === 0) lse[row] = mMax + Math.log(sum);
}

export const pagedDecodeMergeKernel = defineKernel<MergeSpec>({
  family: 'paged_decode_merge',
  summary: "merges the splits of paged_decode exactly by log-sum-exp; also writes each row's lse",
  source: import.meta.url,
  kernel: pagedDecodeMerge,
  name: (s) => `paged_decode_merge_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => MERGE_THREADS,
  grid: () => [arg('rows'), 1, 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
