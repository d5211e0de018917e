/**
 * Causal prefill attention on tensor cores (Backend.causalAttention's output; also
 * the log-sum-exp per (token, head) for key statistics), FlashAttention-2 style:
 *
 * - a block owns BM query rows of one head (16 per warp) and walks the key tiles of
 *   BN = 32 keys up to its last row; K and V tiles arrive by cp.async as two groups,
 *   so V is still in flight while S = Q K^T is computed;
 * - S and O = P V use mma.sync m16n8k16 (f16/bf16 in, f32 accumulators) with
 *   fragments from ldmatrix (V through ldmatrix.trans); P goes from the S
 *   accumulators straight into A fragments without touching shared memory;
 * - the online softmax keeps each row's max and sum in the four lanes that hold it;
 * - shared rows are padded by 16 bytes so ldmatrix reads are free of bank conflicts,
 *   and one buffer holds Q (read once into registers) and then the K tiles.
 */
import {
  blockDim, blockIdx, convert, cpAsync16, cpAsyncCommit, cpAsyncWait, i64, ldmatrixX4, ldmatrixX4Trans, local, mmaM16N8K16,
  offset, shared, shflXor, syncthreads, threadIdx, vstore, type Float16, type Global, type GlobalIn, type f32, type i32,
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
const blockRows = (headDim: number): number => (headDim > 128 ? 32 : 64);
const BN = 32;

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
  const LD = D + 8;
  const CH = D / 8;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const quad = lane & 3;
  const j = lane >> 3;
  const m0 = blockIdx.x * BM;
  const h = blockIdx.y;
  const kvh = h / (numHeads / numKvHeads);
  const sQK = shared<T>(BM * LD);
  const sV = shared<T>(BN * LD);
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);

  // The Q tile, rows past the end zeroed; then its A fragments into registers.
  for (let c = tid; c < BM * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (m0 + r < numTokens) cpAsync16(sQK, r * LD + col, q, (i64(m0 + r) * numHeads + h) * D + col);
    else vstore(sQK, r * LD + col, zero);
  }
  cpAsyncCommit();
  cpAsyncWait(0);
  syncthreads();
  const qf = local<T>(D / 2);
  for (let ks = 0; ks < D / 16; ks++) {
    ldmatrixX4(offset(qf, ks * 8), sQK, (warp * 16 + (j & 1) * 8 + (lane & 7)) * LD + ks * 16 + (j >> 1) * 8);
  }
  syncthreads();

  const o = local<f32>(D / 2);
  for (let e = 0; e < D / 2; e++) o[e] = 0;
  const s = local<f32>(BN / 2);
  const pf = local<T>(BN / 2);
  const bf = local<T>(8);
  // This lane holds rows `rowA` and `rowA + 8` of the warp's 16.
  const rowA = m0 + warp * 16 + (lane >> 2);
  const rowB = rowA + 8;
  let mA: f32 = -Infinity;
  let mB: f32 = -Infinity;
  let lA: f32 = 0;
  let lB: f32 = 0;
  const kvEnd = Math.min(numTokens, m0 + BM);
  for (let n0 = 0; n0 < kvEnd; n0 += BN) {
    for (let c = tid; c < BN * CH; c += blockDim.x) {
      const r = c / CH;
      const col = (c % CH) * 8;
      if (n0 + r < numTokens) cpAsync16(sQK, r * LD + col, k, (i64(n0 + r) * numKvHeads + kvh) * D + col);
      else vstore(sQK, r * LD + col, zero);
    }
    cpAsyncCommit();
    for (let c = tid; c < BN * CH; c += blockDim.x) {
      const r = c / CH;
      const col = (c % CH) * 8;
      if (n0 + r < numTokens) cpAsync16(sV, r * LD + col, v, (i64(n0 + r) * numKvHeads + kvh) * D + col);
      else vstore(sV, r * LD + col, zero);
    }
    cpAsyncCommit();
    // K has landed (V may still be in flight).
    cpAsyncWait(1);
    syncthreads();

    // S = Q K^T for 16 rows x BN keys: B fragments of two key tiles per ldmatrix.
    for (let e = 0; e < BN / 2; e++) s[e] = 0;
    for (let ks = 0; ks < D / 16; ks++) {
      for (let np = 0; np < BN / 16; np++) {
        ldmatrixX4(bf, sQK, (np * 16 + (j >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (j & 1) * 8);
        mmaM16N8K16(offset(s, np * 8), offset(qf, ks * 8), bf, offset(s, np * 8));
        mmaM16N8K16(offset(s, np * 8 + 4), offset(qf, ks * 8), offset(bf, 4), offset(s, np * 8 + 4));
      }
    }

    // Causal mask, scale, and the online softmax update of both rows.
    let maxA = mA;
    let maxB = mB;
    for (let nt = 0; nt < BN / 8; nt++) {
      for (let e = 0; e < 4; e++) {
        const row = e < 2 ? rowA : rowB;
        const key = n0 + nt * 8 + quad * 2 + (e & 1);
        const x = key <= row && key < numTokens ? s[nt * 4 + e] * scale : -Infinity;
        s[nt * 4 + e] = x;
        if (e < 2) maxA = Math.max(maxA, x);
        else maxB = Math.max(maxB, x);
      }
    }
    maxA = Math.max(maxA, shflXor(maxA, 1));
    maxA = Math.max(maxA, shflXor(maxA, 2));
    maxB = Math.max(maxB, shflXor(maxB, 1));
    maxB = Math.max(maxB, shflXor(maxB, 2));
    const corrA = maxA === -Infinity ? 1 : Math.exp(mA - maxA);
    const corrB = maxB === -Infinity ? 1 : Math.exp(mB - maxB);
    mA = maxA;
    mB = maxB;
    lA *= corrA;
    lB *= corrB;
    for (let nt = 0; nt < BN / 8; nt++) {
      for (let e = 0; e < 4; e++) {
        const x = s[nt * 4 + e];
        const p = x === -Infinity ? 0 : Math.exp(x - (e < 2 ? mA : mB));
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
    cpAsyncWait(0);
    syncthreads();
    for (let ks = 0; ks < BN / 16; ks++) {
      for (let dp = 0; dp < D / 16; dp++) {
        ldmatrixX4Trans(bf, sV, (ks * 16 + (j & 1) * 8 + (lane & 7)) * LD + dp * 16 + (j >> 1) * 8);
        mmaM16N8K16(offset(o, dp * 8), offset(pf, ks * 8), bf, offset(o, dp * 8));
        mmaM16N8K16(offset(o, dp * 8 + 4), offset(pf, ks * 8), offset(bf, 4), offset(o, dp * 8 + 4));
      }
    }
    // Everyone is done with this K/V tile before the next one overwrites it.
    syncthreads();
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
    if (rowA < numTokens) lse[rowA * numHeads + h] = mA + Math.log(lA);
    if (rowB < numTokens) lse[rowB * numHeads + h] = mB + Math.log(lB);
  }
}

export const causalPrefillKernel = defineKernel<PrefillSpec>({
  family: 'causal_prefill',
  summary: 'causal prefill attention on tensor cores (mma.sync, ldmatrix, cp.async) with per-row lse (Backend.causalAttention)',
  source: import.meta.url,
  kernel: causalPrefill,
  name: (s) => `causal_prefill_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: (s) => (blockRows(s.headDim) / 16) * 32,
  grid: (s) => [ceilDiv(arg('numTokens'), blockRows(s.headDim)), arg('numHeads'), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkHeadDim(s.headDim) ?? (s.headDim % 16 === 0 ? undefined : 'head dim must be a multiple of 16'),
  unitKey: (s) => s.dtype,
});
