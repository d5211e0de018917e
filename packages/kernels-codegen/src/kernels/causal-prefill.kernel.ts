/**
 * Causal prefill attention on tensor cores (Backend.causalAttention's output; also
 * the log-sum-exp per (token, head) for key statistics), FlashAttention-2 style:
 *
 * - a block owns BM query rows of one head (16 per warp) and walks the key tiles of
 *   BN keys up to its last row; blocks take query tiles last-first, so the longest
 *   (diagonal-most) tiles start in the first wave and the short ones fill the tail;
 * - Q is staged through shared memory once and kept in registers as A fragments;
 * - K and V tiles are double-buffered: tile t+1 is in flight by cp.async while tile
 *   t is computed, with one barrier per tile;
 * - S = Q K^T and O = P V use mma.sync m16n8k16 (f16/bf16 in, f32 accumulators) with
 *   fragments from ldmatrix (V through ldmatrix.trans); P goes from the S
 *   accumulators straight into A fragments without touching shared memory;
 * - a warp skips key tiles that lie wholly above its 16 rows, and applies the causal
 *   mask only on tiles that cross its diagonal;
 * - the online softmax works in the log2 domain (scale folded into one fma per
 *   score) and keeps each row's max and sum in the four lanes that hold it;
 * - shared rows are padded by 16 bytes so ldmatrix reads are free of bank conflicts;
 *   the Q staging area is reused by the K/V stages.
 */
import {
  blockDim,
  blockIdx,
  convert,
  cpAsync16,
  cpAsyncCommit,
  cpAsyncWait,
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
  vstore,
  type Float16,
  type Global,
  type GlobalIn,
  type Local,
  type Shared,
  type f32,
  type i32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product, type DType } from '../spec/matrix.js';
import { checkHeadDim } from './layout.js';

export interface PrefillSpec {
  readonly dtype: DType;
  readonly headDim: number;
}

/** Query rows per block: 64 (4 warps), 32 for head dim 256 to fit registers and shared memory. */
export const prefillBlockRows = (headDim: number): number => (headDim > 128 ? 32 : 64);

/*
 * The tensor-core tile steps that causal_prefill and prefill_key_sums (key-scores.kernel.ts,
 * the same loop with keys and queries swapped) share, inlined by the translator. A tile
 * is staged in shared memory as rows of D elements, LD = D + 8 apart; a warp owns 16 of
 * the block's rows and keeps them as A fragments, and the other operand's tile of BN rows
 * is read as B fragments.
 */

/** The A fragments (D / 2 elements) of this warp's 16 rows of the tile staged at the start of `sm`. */
export function rowFragments<T extends Float16>(spec: PrefillSpec, frag: Local<T>, sm: Shared<T>, warp: i32, lane: i32): void {
  const D = spec.headDim;
  const LD = D + 8;
  const j = lane >> 3;
  for (let ks = 0; ks < D / 16; ks++) {
    ldmatrixX4(offset(frag, ks * 8), sm, (warp * 16 + (j & 1) * 8 + (lane & 7)) * LD + ks * 16 + (j >> 1) * 8);
  }
}

/**
 * s = A B^T for the warp's 16 rows (A fragments `af`) by the BN rows of the tile staged at
 * sm[base] (BN / 2 accumulators: two n-tiles of 8 per ldmatrix into `bf`, 8 elements).
 */
export function tileScores<T extends Float16>(spec: PrefillSpec, s: Local<f32>, af: Local<T>, bf: Local<T>, sm: Shared<T>, base: i32, lane: i32): void {
  const D = spec.headDim;
  const BN = spec.headDim > 128 ? 16 : 32;
  const LD = D + 8;
  const j = lane >> 3;
  for (let e = 0; e < BN / 2; e++) s[e] = 0;
  for (let ks = 0; ks < D / 16; ks++) {
    for (let np = 0; np < BN / 16; np++) {
      ldmatrixX4(offset(bf, 0), sm, base + (np * 16 + (j >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (j & 1) * 8);
      mmaM16N8K16(offset(s, np * 8), offset(af, ks * 8), offset(bf, 0), offset(s, np * 8));
      mmaM16N8K16(offset(s, np * 8 + 4), offset(af, ks * 8), offset(bf, 4), offset(s, np * 8 + 4));
    }
  }
}

export function causalPrefill<T extends Float16>(
  spec: PrefillSpec,
  q: GlobalIn<T>,
  k: GlobalIn<T>,
  v: GlobalIn<T>,
  out: Global<T>,
  lse: Global<f32>,
  numTokens: i32,
  numHeads: i32,
  numKvHeads: i32,
  scale: f32,
): void {
  const D = spec.headDim;
  const BM = spec.headDim > 128 ? 32 : 64;
  const BN = spec.headDim > 128 ? 16 : 32;
  const LD = D + 8;
  const CH = D / 8;
  // One K (or V) tile; a stage is K then V; the Q staging area overlaps the stages.
  const TILE = BN * LD;
  const SH = BM > 4 * BN ? BM * LD : 4 * TILE;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const quad = lane & 3;
  const j = lane >> 3;
  // Last query tile first: the longest blocks start first.
  const m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const h = blockIdx.y;
  const kvh = h / (numHeads / numKvHeads);
  const sm = shared<T>(SH);
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);

  // The Q tile, rows past the end zeroed; then its A fragments into registers.
  for (let c = tid; c < BM * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (m0 + r < numTokens) cpAsync16(sm, r * LD + col, q, (i64(m0 + r) * numHeads + h) * D + col);
    else vstore(sm, r * LD + col, zero);
  }
  cpAsyncCommit();
  cpAsyncWait(0);
  syncthreads();
  const qf = local<T>(D / 2);
  rowFragments(spec, qf, sm, warp, lane);
  syncthreads();

  const o = local<f32>(D / 2);
  for (let e = 0; e < D / 2; e++) o[e] = 0;
  const s = local<f32>(BN / 2);
  const pf = local<T>(BN / 2);
  const bf = local<T>(8);
  // This lane holds rows `rowA` and `rowA + 8` of the warp's 16.
  const warpRow = m0 + warp * 16;
  const rowA = warpRow + (lane >> 2);
  const rowB = rowA + 8;
  const sl = scale * Math.LOG2E;
  // Running maxima in the log2 domain (scores x scale x log2 e); every row sees key 0
  // in the first tile, so they are finite from then on.
  let mA: f32 = -Infinity;
  let mB: f32 = -Infinity;
  let lA: f32 = 0;
  let lB: f32 = 0;
  const kvEnd = Math.min(numTokens, m0 + BM);
  const tiles = (kvEnd + BN - 1) / BN;

  // Stage 0 <- key tile 0.
  for (let c = tid; c < BN * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (r < numTokens) {
      cpAsync16(sm, r * LD + col, k, (i64(r) * numKvHeads + kvh) * D + col);
      cpAsync16(sm, TILE + r * LD + col, v, (i64(r) * numKvHeads + kvh) * D + col);
    } else {
      vstore(sm, r * LD + col, zero);
      vstore(sm, TILE + r * LD + col, zero);
    }
  }
  cpAsyncCommit();

  for (let t = 0; t < tiles; t++) {
    const n0 = t * BN;
    // Tile t has landed, and every warp is done with tile t - 1, whose stage the next load reuses.
    cpAsyncWait(0);
    syncthreads();
    if (t + 1 < tiles) {
      const nb = ((t + 1) & 1) * 2 * TILE;
      const n1 = n0 + BN;
      for (let c = tid; c < BN * CH; c += blockDim.x) {
        const r = c / CH;
        const col = (c % CH) * 8;
        if (n1 + r < numTokens) {
          cpAsync16(sm, nb + r * LD + col, k, (i64(n1 + r) * numKvHeads + kvh) * D + col);
          cpAsync16(sm, nb + TILE + r * LD + col, v, (i64(n1 + r) * numKvHeads + kvh) * D + col);
        } else {
          vstore(sm, nb + r * LD + col, zero);
          vstore(sm, nb + TILE + r * LD + col, zero);
        }
      }
      cpAsyncCommit();
    }
    // Tiles wholly above this warp's rows contribute nothing (warp-uniform skip).
    if (n0 < warpRow + 16) {
      const kb = (t & 1) * 2 * TILE;
      const vb = kb + TILE;
      // S = Q K^T for 16 rows x BN keys.
      tileScores(spec, s, qf, bf, sm, kb, lane);

      // The causal mask, only on tiles that cross this warp's diagonal (keys past the
      // end are above every valid row's diagonal too).
      if (n0 + BN > warpRow + 1) {
        for (let nt = 0; nt < BN / 8; nt++) {
          for (let e = 0; e < 4; e++) {
            const key = n0 + nt * 8 + quad * 2 + (e & 1);
            if (key > (e < 2 ? rowA : rowB)) s[nt * 4 + e] = -Infinity;
          }
        }
      }
      // Online softmax update of both rows, in the log2 domain.
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
      const corrA = exp2(mA - maxA);
      const corrB = exp2(mB - maxB);
      mA = maxA;
      mB = maxB;
      lA *= corrA;
      lB *= corrB;
      for (let nt = 0; nt < BN / 8; nt++) {
        for (let e = 0; e < 4; e++) {
          const p = exp2(fma(s[nt * 4 + e], sl, e < 2 ? -mA : -mB));
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
      // P's accumulator layout is the A fragment layout of the next mma: convert in place.
      for (let ks = 0; ks < BN / 16; ks++) {
        for (let e = 0; e < 8; e++) pf[ks * 8 + e] = convert<T>(s[(2 * ks + (e >> 2)) * 4 + (e & 3)]);
      }

      // O += P V, with V's B fragments through ldmatrix.trans.
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
  for (let dt = 0; dt < D / 8; dt++) {
    const col = dt * 8 + quad * 2;
    if (rowA < numTokens) {
      out[(i64(rowA) * numHeads + h) * D + col] = convert<T>(o[dt * 4] / lA);
      out[(i64(rowA) * numHeads + h) * D + col + 1] = convert<T>(o[dt * 4 + 1] / lA);
    }
    if (rowB < numTokens) {
      out[(i64(rowB) * numHeads + h) * D + col] = convert<T>(o[dt * 4 + 2] / lB);
      out[(i64(rowB) * numHeads + h) * D + col + 1] = convert<T>(o[dt * 4 + 3] / lB);
    }
  }
  if (quad === 0) {
    if (rowA < numTokens) lse[rowA * numHeads + h] = (mA + Math.log2(lA)) * Math.LN2;
    if (rowB < numTokens) lse[rowB * numHeads + h] = (mB + Math.log2(lB)) * Math.LN2;
  }
}

export const causalPrefillKernel = defineKernel<PrefillSpec>({
  family: 'causal_prefill',
  summary: 'causal prefill attention on tensor cores (mma.sync, ldmatrix, cp.async) with per-row lse (Backend.causalAttention)',
  source: import.meta.url,
  kernel: causalPrefill,
  name: (s) => `causal_prefill_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: (s) => (prefillBlockRows(s.headDim) / 16) * 32,
  grid: (s) => [ceilDiv(arg('numTokens'), prefillBlockRows(s.headDim)), arg('numHeads'), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkHeadDim(s.headDim) ?? (s.headDim % 16 === 0 ? undefined : 'head dim must be a multiple of 16'),
  unitKey: (s) => s.dtype,
});
