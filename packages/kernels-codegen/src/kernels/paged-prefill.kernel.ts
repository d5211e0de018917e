/**
 * Causal attention of a prefill chunk over its sequence's pages, on tensor cores
 * (Backend.chunkAttention): the `numRows` queries at positions start .. start +
 * numRows - 1 of one sequence attend every key of its page list up to their own
 * position. A chunk after a cached prefix (a question on a cached document, a chat
 * turn) has few rows and a long list: read row by row, as paged_decode does, every
 * row would load the whole list again; here a block loads each K/V tile once for
 * its BM rows.
 *
 * A FlashAttention-2 loop like causal_prefill's, in the form that kernel had before it
 * took 128 rows a block (Q in registers as A fragments, 16 rows a warp, double-buffered
 * K/V tiles by cp.async, mma.sync m16n8k16, online softmax in the log2 domain), with
 * three differences:
 * - K/V tiles are gathered from the pages (key t is row t % pageSize of page
 *   pageSlots[t / pageSize]), and row r's diagonal is at key start + r;
 * - the keys are split over blockIdx.z, so that a short chunk still fills the GPU;
 *   each split writes its normalised output and log-sum-exp in paged_decode's
 *   partial layout, and `paged_decode_merge` combines them exactly;
 * - a split may hold no key of a row (all masked): its maximum stays -inf, guarded
 *   so that no NaN arises, and it writes lse -inf, which the merge weighs at 0.
 *
 * paged_prefill_fp8 reads fp8 pages (fp8.ts): cp.async double-buffers each tile's
 * codes and the words holding its keys' scale bytes in a byte staging area; after the
 * tile's barrier the block dequantizes it into one stage of K and V tiles in T (exact
 * but for T's range: every value is an e4m3 code times a power of two) and the mma
 * loop runs on them unchanged.
 */
import {
  blockDim,
  blockIdx,
  convert,
  cpAsync16,
  cpAsync4,
  cpAsyncCommit,
  cpAsyncWait,
  decodeE4m3,
  exp2,
  fma,
  gridDim,
  i64,
  ldmatrixX4,
  ldmatrixX4Trans,
  local,
  mmaM16N8K16,
  offset,
  shared,
  shflXor,
  syncthreads,
  threadIdx,
  vload,
  vstore,
  type Float16,
  type Global,
  type GlobalIn,
  type Shared,
  type f32,
  type i32,
  type u8,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { fp8Factor, fp8PageBytes, fp8ScaleBase } from './fp8.js';
import { checkHeadDim, checkPageSize, type PagedSpec } from './layout.js';

/** Query rows per block: 64 (4 warps), 32 for head dim 256 to fit registers and shared memory. */
export const pagedPrefillRows = (headDim: number): number => (headDim > 128 ? 32 : 64);
/** Keys per tile. */
export const pagedPrefillKeys = (headDim: number): number => (headDim > 128 ? 16 : 32);

export function pagedPrefill<T extends Float16>(
  spec: PagedSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<T>,
  pageSlots: GlobalIn<i32>,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  numRows: i32,
  start: i32,
  numHeads: i32,
  numKvHeads: i32,
  numSplits: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const BM = spec.headDim > 128 ? 32 : 64;
  const BN = spec.headDim > 128 ? 16 : 32;
  const LD = D + 8;
  const CH = D / 8;
  const TILE = BN * LD;
  const SH = BM > 4 * BN ? BM * LD : 4 * TILE;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const quad = lane & 3;
  const j = lane >> 3;
  const m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const h = blockIdx.y;
  const split = blockIdx.z;
  const kvh = h / (numHeads / numKvHeads);
  const pageElems = i64(2 * numKvHeads * P * D);
  const vOffset = numKvHeads * P * D;
  const sm = shared<T>(SH);
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);

  // The Q tile, rows past the end zeroed; then its A fragments into registers.
  for (let c = tid; c < BM * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (m0 + r < numRows) cpAsync16(sm, r * LD + col, q, (i64(m0 + r) * numHeads + h) * D + col);
    else vstore(sm, r * LD + col, zero);
  }
  cpAsyncCommit();
  cpAsyncWait(0);
  syncthreads();
  const qf = local<T>(D / 2);
  for (let ks = 0; ks < D / 16; ks++) {
    ldmatrixX4(offset(qf, ks * 8), sm, (warp * 16 + (j & 1) * 8 + (lane & 7)) * LD + ks * 16 + (j >> 1) * 8);
  }
  syncthreads();

  const o = local<f32>(D / 2);
  for (let e = 0; e < D / 2; e++) o[e] = 0;
  const s = local<f32>(BN / 2);
  const pf = local<T>(BN / 2);
  const bf = local<T>(8);
  // This lane holds rows `rowA` and `rowA + 8` of the warp's 16; their keys end at their positions.
  const warpRow = m0 + warp * 16;
  const rowA = warpRow + (lane >> 2);
  const rowB = rowA + 8;
  const posA = start + rowA;
  const posB = start + rowB;
  const warpPos = start + warpRow;
  const sl = scale * Math.LOG2E;
  let mA: f32 = -Infinity;
  let mB: f32 = -Infinity;
  let lA: f32 = 0;
  let lB: f32 = 0;
  // The block's keys (up to its last row's position), and this split's whole tiles of them.
  const kvEnd = start + Math.min(numRows, m0 + BM);
  const allTiles = (kvEnd + BN - 1) / BN;
  const per = (allTiles + numSplits - 1) / numSplits;
  const t0 = split * per;
  const t1 = Math.min(allTiles, t0 + per);

  // Stage 0 <- key tile t0 (keys past the end zeroed: above every row's diagonal).
  if (t0 < t1) {
    for (let c = tid; c < BN * CH; c += blockDim.x) {
      const r = c / CH;
      const col = (c % CH) * 8;
      const key = t0 * BN + r;
      if (key < kvEnd) {
        const at = i64(pageSlots[key / P]) * pageElems + (kvh * P + (key % P)) * D + col;
        cpAsync16(sm, r * LD + col, pool, at);
        cpAsync16(sm, TILE + r * LD + col, pool, at + vOffset);
      } else {
        vstore(sm, r * LD + col, zero);
        vstore(sm, TILE + r * LD + col, zero);
      }
    }
  }
  cpAsyncCommit();

  for (let t = t0; t < t1; t++) {
    const n0 = t * BN;
    const stage = (t - t0) & 1;
    cpAsyncWait(0);
    syncthreads();
    if (t + 1 < t1) {
      const nb = (1 - stage) * 2 * TILE;
      const n1 = n0 + BN;
      for (let c = tid; c < BN * CH; c += blockDim.x) {
        const r = c / CH;
        const col = (c % CH) * 8;
        const key = n1 + r;
        if (key < kvEnd) {
          const at = i64(pageSlots[key / P]) * pageElems + (kvh * P + (key % P)) * D + col;
          cpAsync16(sm, nb + r * LD + col, pool, at);
          cpAsync16(sm, nb + TILE + r * LD + col, pool, at + vOffset);
        } else {
          vstore(sm, nb + r * LD + col, zero);
          vstore(sm, nb + TILE + r * LD + col, zero);
        }
      }
      cpAsyncCommit();
    }
    // Tiles wholly above this warp's rows contribute nothing (warp-uniform skip).
    if (n0 < warpPos + 16) {
      const kb = stage * 2 * TILE;
      const vb = kb + TILE;
      for (let e = 0; e < BN / 2; e++) s[e] = 0;
      for (let ks = 0; ks < D / 16; ks++) {
        for (let np = 0; np < BN / 16; np++) {
          ldmatrixX4(bf, sm, kb + (np * 16 + (j >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (j & 1) * 8);
          mmaM16N8K16(offset(s, np * 8), offset(qf, ks * 8), bf, offset(s, np * 8));
          mmaM16N8K16(offset(s, np * 8 + 4), offset(qf, ks * 8), offset(bf, 4), offset(s, np * 8 + 4));
        }
      }
      // The causal mask, only on tiles that cross this warp's diagonal.
      if (n0 + BN > warpPos + 1) {
        for (let nt = 0; nt < BN / 8; nt++) {
          for (let e = 0; e < 4; e++) {
            const key = n0 + nt * 8 + quad * 2 + (e & 1);
            if (key > (e < 2 ? posA : posB)) s[nt * 4 + e] = -Infinity;
          }
        }
      }
      let maxA = mA;
      let maxB = mB;
      for (let nt = 0; nt < BN / 8; nt++) {
        maxA = Math.max(maxA, Math.max(s[nt * 4] * sl, s[nt * 4 + 1] * sl));
        maxB = Math.max(maxB, Math.max(s[nt * 4 + 2] * sl, s[nt * 4 + 3] * sl));
      }
      maxA = Math.max(maxA, shflXor(maxA, 1));
      maxA = Math.max(maxA, shflXor(maxA, 2));
      maxB = Math.max(maxB, shflXor(maxB, 1));
      maxB = Math.max(maxB, shflXor(maxB, 2));
      // A row with every key so far masked keeps max -inf: subtract 0 instead (its scores are -inf, so p = 0).
      const corrA: f32 = maxA > -Infinity ? exp2(mA - maxA) : 1;
      const corrB: f32 = maxB > -Infinity ? exp2(mB - maxB) : 1;
      mA = maxA;
      mB = maxB;
      const subA: f32 = mA > -Infinity ? mA : 0;
      const subB: f32 = mB > -Infinity ? mB : 0;
      lA *= corrA;
      lB *= corrB;
      for (let nt = 0; nt < BN / 8; nt++) {
        for (let e = 0; e < 4; e++) {
          const p = exp2(fma(s[nt * 4 + e], sl, e < 2 ? -subA : -subB));
          s[nt * 4 + e] = p;
          if (e < 2) lA += p;
          else lB += p;
        }
      }
      for (let dt = 0; dt < D / 8; dt++) {
        o[dt * 4] *= corrA;
        o[dt * 4 + 1] *= corrA;
        o[dt * 4 + 2] *= corrB;
        o[dt * 4 + 3] *= corrB;
      }
      for (let ks = 0; ks < BN / 16; ks++) {
        for (let e = 0; e < 8; e++) pf[ks * 8 + e] = convert<T>(s[(2 * ks + (e >> 2)) * 4 + (e & 3)]);
      }
      for (let ks = 0; ks < BN / 16; ks++) {
        for (let dp = 0; dp < D / 16; dp++) {
          ldmatrixX4Trans(bf, sm, vb + (ks * 16 + (j & 1) * 8 + (lane & 7)) * LD + dp * 16 + (j >> 1) * 8);
          mmaM16N8K16(offset(o, dp * 8), offset(pf, ks * 8), bf, offset(o, dp * 8));
          mmaM16N8K16(offset(o, dp * 8 + 4), offset(pf, ks * 8), offset(bf, 4), offset(o, dp * 8 + 4));
        }
      }
    }
  }

  lA += shflXor(lA, 1);
  lA += shflXor(lA, 2);
  lB += shflXor(lB, 1);
  lB += shflXor(lB, 2);
  // Partial rows in paged_decode's layout: (row * numHeads + head) * numSplits + split.
  const outA = (i64(rowA) * numHeads + h) * numSplits + split;
  const outB = (i64(rowB) * numHeads + h) * numSplits + split;
  const invA: f32 = lA > 0 ? 1 / lA : 0;
  const invB: f32 = lB > 0 ? 1 / lB : 0;
  for (let dt = 0; dt < D / 8; dt++) {
    const col = dt * 8 + quad * 2;
    if (rowA < numRows) {
      partialOut[outA * D + col] = o[dt * 4] * invA;
      partialOut[outA * D + col + 1] = o[dt * 4 + 1] * invA;
    }
    if (rowB < numRows) {
      partialOut[outB * D + col] = o[dt * 4 + 2] * invB;
      partialOut[outB * D + col + 1] = o[dt * 4 + 3] * invB;
    }
  }
  if (quad === 0) {
    if (rowA < numRows) partialLse[outA] = lA > 0 ? (mA + Math.log2(lA)) * Math.LN2 : -Infinity;
    if (rowB < numRows) partialLse[outB] = lB > 0 ? (mB + Math.log2(lB)) * Math.LN2 : -Infinity;
  }
}

/**
 * Copies key tile `tile`'s fp8 codes (16-byte chunks) and the 4-byte words holding its
 * keys' K and V scale bytes into staging stage `stage` ([stage][K|V][BN][D] codes,
 * [stage][K|V][BN][4] words); keys at or past kvEnd are left out.
 */
function stageFp8Tile(
  spec: PagedSpec,
  codes: Shared<u8>,
  words: Shared<u8>,
  pool: GlobalIn<u8>,
  pageSlots: GlobalIn<i32>,
  tile: i32,
  stage: i32,
  kvEnd: i32,
  kvh: i32,
  numKvHeads: i32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const BN = spec.headDim > 128 ? 16 : 32;
  const CH = D / 16;
  const pageBytes = i64(fp8PageBytes(spec, numKvHeads));
  for (let c = threadIdx.x; c < BN * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 16;
    const key = tile * BN + r;
    if (key < kvEnd) {
      const at = i64(pageSlots[key / P]) * pageBytes + (kvh * P + (key % P)) * D + col;
      cpAsync16(codes, (stage * 2 * BN + r) * D + col, pool, at);
      cpAsync16(codes, ((stage * 2 + 1) * BN + r) * D + col, pool, at + numKvHeads * P * D);
    }
  }
  for (let c = threadIdx.x; c < 2 * BN; c += blockDim.x) {
    const kv = c / BN;
    const r = c % BN;
    const key = tile * BN + r;
    if (key < kvEnd) {
      const at = kv * numKvHeads * P + kvh * P + (key % P);
      cpAsync4(words, ((stage * 2 + kv) * BN + r) * 4, pool, i64(pageSlots[key / P]) * pageBytes + (fp8ScaleBase(spec, numKvHeads) + (at >> 2) * 4));
    }
  }
}

export function pagedPrefillFp8<T extends Float16>(
  spec: PagedSpec,
  q: GlobalIn<T>,
  pool: GlobalIn<u8>,
  pageSlots: GlobalIn<i32>,
  partialOut: Global<f32>,
  partialLse: Global<f32>,
  numRows: i32,
  start: i32,
  numHeads: i32,
  numKvHeads: i32,
  numSplits: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const BM = spec.headDim > 128 ? 32 : 64;
  const BN = spec.headDim > 128 ? 16 : 32;
  const LD = D + 8;
  const CH = D / 8;
  const TILE = BN * LD;
  // One stage of K and V tiles in T (the staging is double-buffered instead); the Q tile is staged here first.
  const SH = BM > 2 * BN ? BM * LD : 2 * TILE;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const quad = lane & 3;
  const j = lane >> 3;
  const m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const h = blockIdx.y;
  const split = blockIdx.z;
  const kvh = h / (numHeads / numKvHeads);
  const sm = shared<T>(SH);
  const codes = shared<u8>(2 * 2 * BN * D);
  const words = shared<u8>(2 * 2 * BN * 4);
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);

  for (let c = tid; c < BM * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (m0 + r < numRows) cpAsync16(sm, r * LD + col, q, (i64(m0 + r) * numHeads + h) * D + col);
    else vstore(sm, r * LD + col, zero);
  }
  cpAsyncCommit();
  cpAsyncWait(0);
  syncthreads();
  const qf = local<T>(D / 2);
  for (let ks = 0; ks < D / 16; ks++) {
    ldmatrixX4(offset(qf, ks * 8), sm, (warp * 16 + (j & 1) * 8 + (lane & 7)) * LD + ks * 16 + (j >> 1) * 8);
  }
  syncthreads();

  const o = local<f32>(D / 2);
  for (let e = 0; e < D / 2; e++) o[e] = 0;
  const s = local<f32>(BN / 2);
  const pf = local<T>(BN / 2);
  const bf = local<T>(8);
  const c8 = local<u8>(8);
  const t8 = local<T>(8);
  const warpRow = m0 + warp * 16;
  const rowA = warpRow + (lane >> 2);
  const rowB = rowA + 8;
  const posA = start + rowA;
  const posB = start + rowB;
  const warpPos = start + warpRow;
  const sl = scale * Math.LOG2E;
  let mA: f32 = -Infinity;
  let mB: f32 = -Infinity;
  let lA: f32 = 0;
  let lB: f32 = 0;
  const kvEnd = start + Math.min(numRows, m0 + BM);
  const allTiles = (kvEnd + BN - 1) / BN;
  const per = (allTiles + numSplits - 1) / numSplits;
  const t0 = split * per;
  const t1 = Math.min(allTiles, t0 + per);

  if (t0 < t1) stageFp8Tile(spec, codes, words, pool, pageSlots, t0, 0, kvEnd, kvh, numKvHeads);
  cpAsyncCommit();

  for (let t = t0; t < t1; t++) {
    const n0 = t * BN;
    const stage = (t - t0) & 1;
    // Tile t's bytes have landed, and every warp is done with the previous tile (its T tiles and staging stage).
    cpAsyncWait(0);
    syncthreads();
    if (t + 1 < t1) {
      stageFp8Tile(spec, codes, words, pool, pageSlots, t + 1, 1 - stage, kvEnd, kvh, numKvHeads);
      cpAsyncCommit();
    }
    // Dequantize into the K and V tiles: 8 codes a chunk, times the key's factor (keys past the end zeroed).
    for (let c = tid; c < 2 * BN * CH; c += blockDim.x) {
      const kv = c / (BN * CH);
      const r = (c / CH) % BN;
      const col = (c % CH) * 8;
      const key = n0 + r;
      if (key < kvEnd) {
        const at = kv * numKvHeads * P + kvh * P + (key % P);
        const factor = fp8Factor(words[((stage * 2 + kv) * BN + r) * 4 + (at & 3)]);
        vload(c8, codes, ((stage * 2 + kv) * BN + r) * D + col);
        for (let e = 0; e < 8; e++) t8[e] = convert<T>(decodeE4m3(c8[e]) * factor);
        vstore(sm, kv * TILE + r * LD + col, t8);
      } else {
        vstore(sm, kv * TILE + r * LD + col, zero);
      }
    }
    syncthreads();
    // From here on as paged_prefill, on the one stage of tiles.
    if (n0 < warpPos + 16) {
      for (let e = 0; e < BN / 2; e++) s[e] = 0;
      for (let ks = 0; ks < D / 16; ks++) {
        for (let np = 0; np < BN / 16; np++) {
          ldmatrixX4(bf, sm, (np * 16 + (j >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (j & 1) * 8);
          mmaM16N8K16(offset(s, np * 8), offset(qf, ks * 8), bf, offset(s, np * 8));
          mmaM16N8K16(offset(s, np * 8 + 4), offset(qf, ks * 8), offset(bf, 4), offset(s, np * 8 + 4));
        }
      }
      if (n0 + BN > warpPos + 1) {
        for (let nt = 0; nt < BN / 8; nt++) {
          for (let e = 0; e < 4; e++) {
            const key = n0 + nt * 8 + quad * 2 + (e & 1);
            if (key > (e < 2 ? posA : posB)) s[nt * 4 + e] = -Infinity;
          }
        }
      }
      let maxA = mA;
      let maxB = mB;
      for (let nt = 0; nt < BN / 8; nt++) {
        maxA = Math.max(maxA, Math.max(s[nt * 4] * sl, s[nt * 4 + 1] * sl));
        maxB = Math.max(maxB, Math.max(s[nt * 4 + 2] * sl, s[nt * 4 + 3] * sl));
      }
      maxA = Math.max(maxA, shflXor(maxA, 1));
      maxA = Math.max(maxA, shflXor(maxA, 2));
      maxB = Math.max(maxB, shflXor(maxB, 1));
      maxB = Math.max(maxB, shflXor(maxB, 2));
      const corrA: f32 = maxA > -Infinity ? exp2(mA - maxA) : 1;
      const corrB: f32 = maxB > -Infinity ? exp2(mB - maxB) : 1;
      mA = maxA;
      mB = maxB;
      const subA: f32 = mA > -Infinity ? mA : 0;
      const subB: f32 = mB > -Infinity ? mB : 0;
      lA *= corrA;
      lB *= corrB;
      for (let nt = 0; nt < BN / 8; nt++) {
        for (let e = 0; e < 4; e++) {
          const p = exp2(fma(s[nt * 4 + e], sl, e < 2 ? -subA : -subB));
          s[nt * 4 + e] = p;
          if (e < 2) lA += p;
          else lB += p;
        }
      }
      for (let dt = 0; dt < D / 8; dt++) {
        o[dt * 4] *= corrA;
        o[dt * 4 + 1] *= corrA;
        o[dt * 4 + 2] *= corrB;
        o[dt * 4 + 3] *= corrB;
      }
      for (let ks = 0; ks < BN / 16; ks++) {
        for (let e = 0; e < 8; e++) pf[ks * 8 + e] = convert<T>(s[(2 * ks + (e >> 2)) * 4 + (e & 3)]);
      }
      for (let ks = 0; ks < BN / 16; ks++) {
        for (let dp = 0; dp < D / 16; dp++) {
          ldmatrixX4Trans(bf, sm, TILE + (ks * 16 + (j & 1) * 8 + (lane & 7)) * LD + dp * 16 + (j >> 1) * 8);
          mmaM16N8K16(offset(o, dp * 8), offset(pf, ks * 8), bf, offset(o, dp * 8));
          mmaM16N8K16(offset(o, dp * 8 + 4), offset(pf, ks * 8), offset(bf, 4), offset(o, dp * 8 + 4));
        }
      }
    }
  }

  lA += shflXor(lA, 1);
  lA += shflXor(lA, 2);
  lB += shflXor(lB, 1);
  lB += shflXor(lB, 2);
  const outA = (i64(rowA) * numHeads + h) * numSplits + split;
  const outB = (i64(rowB) * numHeads + h) * numSplits + split;
  const invA: f32 = lA > 0 ? 1 / lA : 0;
  const invB: f32 = lB > 0 ? 1 / lB : 0;
  for (let dt = 0; dt < D / 8; dt++) {
    const col = dt * 8 + quad * 2;
    if (rowA < numRows) {
      partialOut[outA * D + col] = o[dt * 4] * invA;
      partialOut[outA * D + col + 1] = o[dt * 4 + 1] * invA;
    }
    if (rowB < numRows) {
      partialOut[outB * D + col] = o[dt * 4 + 2] * invB;
      partialOut[outB * D + col + 1] = o[dt * 4 + 3] * invB;
    }
  }
  if (quad === 0) {
    if (rowA < numRows) partialLse[outA] = lA > 0 ? (mA + Math.log2(lA)) * Math.LN2 : -Infinity;
    if (rowB < numRows) partialLse[outB] = lB > 0 ? (mB + Math.log2(lB)) * Math.LN2 : -Infinity;
  }
}

/**
 * A split count for paged_prefill that fills the GPU in about one wave: blocks of the
 * chunk's query tiles x heads, times splits, within `sms` x 2 resident blocks (about
 * 35 KB of shared memory and many registers a block), at most one split per key
 * tile and at most 32.
 */
export function pagedPrefillSplits(o: {
  readonly rows: number;
  readonly numHeads: number;
  readonly headDim: number;
  /** Keys of the chunk's last row: start + rows. */
  readonly keys: number;
  readonly sms?: number;
}): number {
  const blocks = Math.ceil(o.rows / pagedPrefillRows(o.headDim)) * o.numHeads;
  const fit = Math.floor(((o.sms ?? 132) * 2) / blocks);
  const tiles = Math.ceil(o.keys / pagedPrefillKeys(o.headDim));
  return Math.max(1, Math.min(fit, tiles, 32));
}

export const pagedPrefillKernel = defineKernel<PagedSpec>({
  family: 'paged_prefill',
  summary:
    "a prefill chunk's causal attention over its sequence's pages on tensor cores, split over the keys; merge with paged_decode_merge (Backend.chunkAttention)",
  source: import.meta.url,
  kernel: pagedPrefill,
  name: (s) => `paged_prefill_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: (s) => (pagedPrefillRows(s.headDim) / 16) * 32,
  grid: (s) => [ceilDiv(arg('numRows'), pagedPrefillRows(s.headDim)), arg('numHeads'), arg('numSplits')],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? (s.headDim % 16 === 0 ? undefined : 'head dim must be a multiple of 16') ?? checkPageSize(s.pageSize),
  unitKey: (s) => `${s.dtype}_hd${s.headDim}`,
});

export const pagedPrefillFp8Kernel = defineKernel<PagedSpec>({
  family: 'paged_prefill_fp8',
  summary:
    "a prefill chunk's causal attention over its sequence's fp8 pages on tensor cores (tiles dequantized into shared memory), split over the keys; merge with paged_decode_merge (Backend.chunkAttention, kvDtype fp8)",
  source: import.meta.url,
  kernel: pagedPrefillFp8,
  name: (s) => `paged_prefill_fp8_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: (s) => (pagedPrefillRows(s.headDim) / 16) * 32,
  grid: (s) => [ceilDiv(arg('numRows'), pagedPrefillRows(s.headDim)), arg('numHeads'), arg('numSplits')],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? (s.headDim % 16 === 0 ? undefined : 'head dim must be a multiple of 16') ?? checkPageSize(s.pageSize),
  unitKey: (s) => `${s.dtype}_hd${s.headDim}`,
});
