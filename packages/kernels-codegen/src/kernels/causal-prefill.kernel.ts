/**
 * Causal prefill attention on tensor cores (Backend.causalAttention's output; also
 * the log-sum-exp per (token, head) for key statistics), FlashAttention-2 style:
 *
 * - a block of 4 warps owns BM query rows of one head and walks the key tiles of BN
 *   keys up to its last row; blocks take query tiles last-first, so the longest
 *   (diagonal-most) tiles start in the first wave and the short ones fill the tail;
 * - a warp owns MT m-tiles of 16 rows (32 rows for head dims up to 128, so BM = 128
 *   and BN = 64): every K or V fragment it reads from shared memory serves MT m-tiles,
 *   and every K/V tile a block streams from L2 serves 128 rows. Measured on an H100
 *   (docs/BENCHMARKS.md, seventh session), the 64-row blocks of one m-tile a warp
 *   were bound by L2 and shared-memory reads (L2 at 70% of its peak, L1 at 68%);
 * - Q stays in shared memory (its A fragments are read again for each key tile: 32
 *   rows of them would not fit registers beside the O and S accumulators);
 * - K/V stages (CausalPrefillSpec.stages): with one K and one V buffer, V of tile t
 *   loads while S = Q K^T of tile t is computed and K of tile t + 1 while O += P V of
 *   tile t, with a barrier between the two halves (68 KB at head dim 128); with two,
 *   tile t + 1 loads during all of tile t, one barrier a tile (102 KB; still two
 *   blocks an SM, and 1.5% faster over a 128k prefill on an H100: the default). Past
 *   48 KB this is dynamic shared memory (output/shared-placement.ts);
 * - S = Q K^T and O = P V use mma.sync m16n8k16 (f16/bf16 in, f32 accumulators) with
 *   fragments from ldmatrix (V through ldmatrix.trans); P goes from the S
 *   accumulators straight into A fragments without touching shared memory;
 * - a warp skips key tiles that lie wholly above its rows (warp-uniform), and applies
 *   the causal mask only on tiles that cross an m-tile's diagonal;
 * - the online softmax works in the log2 domain (scale folded into one fma per
 *   score) and keeps each row's max and sum in the four lanes that hold it. With 8
 *   warps an SM (254 registers) the kernel is bound by latency, so it spends few
 *   instructions: ex2.approx.ftz for the weights, maxima taken on raw scores and
 *   scaled once, and no O rescale while no row of a warp moved;
 * - shared rows are padded by 16 bytes so ldmatrix reads are free of bank conflicts.
 */
import {
  blockDim,
  blockIdx,
  convert,
  cpAsync16,
  cpAsyncCommit,
  cpAsyncWait,
  exp2Ftz,
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
  warpAny,
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

export interface CausalPrefillSpec extends PrefillSpec {
  /**
   * K/V tile buffers: 1 (V of tile t loads during S of tile t, K of tile t + 1 during
   * P V: two barriers a tile, 68 KB at head dim 128) or 2 (tile t + 1 loads during all
   * of tile t: one barrier a tile, 102 KB, still two blocks an SM).
   */
  readonly stages: 1 | 2;
}

/** Rows per block of prefill_key_sums (key-scores.kernel.ts): 64 (4 warps), 32 for head dim 256 to fit registers and shared memory. */
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

/**
 * `rows` rows from row0 of head `head` (of `heads`) of q, k or v into `dst` at `base`
 * (rows of LD), rows past the end zeroed: the Q tile and each K or V tile.
 */
function loadRows<T extends Float16>(
  spec: PrefillSpec,
  dst: Shared<T>,
  base: i32,
  src: GlobalIn<T>,
  row0: i32,
  rows: i32,
  numTokens: i32,
  heads: i32,
  head: i32,
): void {
  const D = spec.headDim;
  const LD = D + 8;
  const CH = D / 8;
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);
  for (let c = threadIdx.x; c < rows * CH; c += blockDim.x) {
    const r = c / CH;
    const col = (c % CH) * 8;
    if (row0 + r < numTokens) cpAsync16(dst, base + r * LD + col, src, (i64(row0 + r) * heads + head) * D + col);
    else vstore(dst, base + r * LD + col, zero);
  }
}

/** Query rows per causal_prefill block (the kernel's BM): 4 warps of two m-tiles, one past head dim 128 (registers). */
export const causalPrefillBlockRows = (headDim: number): number => (headDim > 128 ? 64 : 128);

export function causalPrefill<T extends Float16>(
  spec: CausalPrefillSpec,
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
  const MT = spec.headDim > 128 ? 1 : 2;
  const BM = 64 * MT;
  const BN = spec.headDim > 128 ? 32 : 64;
  const LD = D + 8;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const quad = lane & 3;
  const j = lane >> 3;
  // Last query tile first: the longest blocks start first.
  const m0 = (gridDim.x - 1 - blockIdx.x) * BM;
  const h = blockIdx.y;
  const kvh = h / (numHeads / numKvHeads);
  const S2 = spec.stages === 2;
  // Q, then K and V of each stage.
  const TILE = BN * LD;
  const sq = shared<T>(BM * LD);
  const skv = shared<T>(2 * spec.stages * TILE);

  // The Q tile and tile 0's K (and V with two stages), one cp.async group.
  loadRows(spec, sq, 0, q, m0, BM, numTokens, numHeads, h);
  loadRows(spec, skv, 0, k, 0, BN, numTokens, numKvHeads, kvh);
  if (S2) loadRows(spec, skv, TILE, v, 0, BN, numTokens, numKvHeads, kvh);
  cpAsyncCommit();

  const o = local<f32>((MT * D) / 2);
  for (let e = 0; e < (MT * D) / 2; e++) o[e] = 0;
  const s = local<f32>((MT * BN) / 2);
  const qa = local<T>(MT * 8);
  const pf = local<T>(MT * 8);
  const bf = local<T>(8);
  // Per m-tile, the lane's two rows' running max (log2 domain) and sum: [A, B] pairs.
  const mx = local<f32>(2 * MT);
  const sum = local<f32>(2 * MT);
  for (let e = 0; e < 2 * MT; e++) {
    // Every row sees key 0 in the first tile, so the maxima are finite from then on.
    mx[e] = -Infinity;
    sum[e] = 0;
  }
  // The warp's rows; this lane holds rows lane / 4 and lane / 4 + 8 of each m-tile.
  const warpRow = m0 + warp * 16 * MT;
  const sl = scale * Math.LOG2E;
  const kvEnd = Math.min(numTokens, m0 + BM);
  const tiles = (kvEnd + BN - 1) / BN;

  for (let t = 0; t < tiles; t++) {
    const n0 = t * BN;
    // One stage: K and V at 0 and TILE. Two: tile t's at (t & 1) * 2 TILE.
    const kb = S2 ? (t & 1) * 2 * TILE : 0;
    const vb = kb + TILE;
    // K of tile t (and Q; with two stages V too) have landed; every warp is done with V of
    // tile t - 1 (with two stages, with all of tile t - 1, whose stage the next load reuses).
    cpAsyncWait(0);
    syncthreads();
    if (S2) {
      if (t + 1 < tiles) {
        const nb = ((t + 1) & 1) * 2 * TILE;
        loadRows(spec, skv, nb, k, n0 + BN, BN, numTokens, numKvHeads, kvh);
        loadRows(spec, skv, nb + TILE, v, n0 + BN, BN, numTokens, numKvHeads, kvh);
        cpAsyncCommit();
      }
    } else {
      loadRows(spec, skv, vb, v, n0, BN, numTokens, numKvHeads, kvh);
      cpAsyncCommit();
    }
    // Tiles wholly above this warp's rows contribute nothing (warp-uniform). n0 and the
    // warp's first row are multiples of 16 MT, so an active warp's m-tiles all are.
    const active = n0 < warpRow + 16 * MT;
    if (active) {
      // S = Q K^T for each m-tile x BN keys; a K fragment serves every m-tile.
      for (let e = 0; e < (MT * BN) / 2; e++) s[e] = 0;
      for (let ks = 0; ks < D / 16; ks++) {
        for (let mt = 0; mt < MT; mt++) {
          ldmatrixX4(offset(qa, mt * 8), sq, (warp * 16 * MT + mt * 16 + (j & 1) * 8 + (lane & 7)) * LD + ks * 16 + (j >> 1) * 8);
        }
        for (let np = 0; np < BN / 16; np++) {
          ldmatrixX4(bf, skv, kb + (np * 16 + (j >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (j & 1) * 8);
          for (let mt = 0; mt < MT; mt++) {
            const sb = (mt * BN) / 2 + np * 8;
            mmaM16N8K16(offset(s, sb), offset(qa, mt * 8), bf, offset(s, sb));
            mmaM16N8K16(offset(s, sb + 4), offset(qa, mt * 8), offset(bf, 4), offset(s, sb + 4));
          }
        }
      }
      for (let mt = 0; mt < MT; mt++) {
        const r0 = warpRow + mt * 16;
        const rowA = r0 + (lane >> 2);
        const rowB = rowA + 8;
        const sb = (mt * BN) / 2;
        // The causal mask, only on tiles that cross this m-tile's diagonal (keys past
        // the end are above every valid row's diagonal too).
        if (n0 + BN > r0 + 1) {
          for (let nt = 0; nt < BN / 8; nt++) {
            for (let e = 0; e < 4; e++) {
              const key = n0 + nt * 8 + quad * 2 + (e & 1);
              if (key > (e < 2 ? rowA : rowB)) s[sb + nt * 4 + e] = -Infinity;
            }
          }
        }
        // Online softmax update of both rows, in the log2 domain.
        // The raw maxima, scaled once: rounding is monotonic and sl > 0, so this is the
        // maximum of the scaled scores, bit for bit.
        let rawA = s[sb];
        let rawB = s[sb + 2];
        for (let nt = 0; nt < BN / 8; nt++) {
          rawA = Math.max(rawA, Math.max(s[sb + nt * 4], s[sb + nt * 4 + 1]));
          rawB = Math.max(rawB, Math.max(s[sb + nt * 4 + 2], s[sb + nt * 4 + 3]));
        }
        let maxA = Math.max(mx[2 * mt], rawA * sl);
        let maxB = Math.max(mx[2 * mt + 1], rawB * sl);
        maxA = Math.max(maxA, shflXor(maxA, 1));
        maxA = Math.max(maxA, shflXor(maxA, 2));
        maxB = Math.max(maxB, shflXor(maxB, 1));
        maxB = Math.max(maxB, shflXor(maxB, 2));
        const corrA = exp2Ftz(mx[2 * mt] - maxA);
        const corrB = exp2Ftz(mx[2 * mt + 1] - maxB);
        mx[2 * mt] = maxA;
        mx[2 * mt + 1] = maxB;
        let lA = sum[2 * mt] * corrA;
        let lB = sum[2 * mt + 1] * corrB;
        for (let nt = 0; nt < BN / 8; nt++) {
          for (let e = 0; e < 4; e++) {
            const p = exp2Ftz(fma(s[sb + nt * 4 + e], sl, e < 2 ? -maxA : -maxB));
            s[sb + nt * 4 + e] = p;
            if (e < 2) lA += p;
            else lB += p;
          }
        }
        sum[2 * mt] = lA;
        sum[2 * mt + 1] = lB;
        // Once the maxima settle (most tiles of a long prompt), no row of the warp moved:
        // skip the rescale (x 1 changes nothing).
        if (warpAny(corrA !== 1 || corrB !== 1)) {
          const ob = (mt * D) / 2;
          for (let dt = 0; dt < D / 8; dt++) {
            o[ob + dt * 4] *= corrA;
            o[ob + dt * 4 + 1] *= corrA;
            o[ob + dt * 4 + 2] *= corrB;
            o[ob + dt * 4 + 3] *= corrB;
          }
        }
      }
    }
    if (!S2) {
      // V of tile t has landed; every warp is done with K of tile t, which the next load replaces.
      cpAsyncWait(0);
      syncthreads();
      if (t + 1 < tiles) {
        loadRows(spec, skv, 0, k, n0 + BN, BN, numTokens, numKvHeads, kvh);
        cpAsyncCommit();
      }
    }
    if (active) {
      // O += P V: P's accumulator layout is the A fragment layout of the next mma
      // (converted in place); a V fragment (ldmatrix.trans) serves every m-tile.
      for (let ks = 0; ks < BN / 16; ks++) {
        for (let mt = 0; mt < MT; mt++) {
          for (let e = 0; e < 8; e++) pf[mt * 8 + e] = convert<T>(s[(mt * BN) / 2 + (2 * ks + (e >> 2)) * 4 + (e & 3)]);
        }
        for (let dp = 0; dp < D / 16; dp++) {
          ldmatrixX4Trans(bf, skv, vb + (ks * 16 + (j & 1) * 8 + (lane & 7)) * LD + dp * 16 + (j >> 1) * 8);
          for (let mt = 0; mt < MT; mt++) {
            const ob = (mt * D) / 2 + dp * 8;
            mmaM16N8K16(offset(o, ob), offset(pf, mt * 8), bf, offset(o, ob));
            mmaM16N8K16(offset(o, ob + 4), offset(pf, mt * 8), offset(bf, 4), offset(o, ob + 4));
          }
        }
      }
    }
  }

  for (let mt = 0; mt < MT; mt++) {
    const rowA = warpRow + mt * 16 + (lane >> 2);
    const rowB = rowA + 8;
    let lA = sum[2 * mt];
    let lB = sum[2 * mt + 1];
    lA += shflXor(lA, 1);
    lA += shflXor(lA, 2);
    lB += shflXor(lB, 1);
    lB += shflXor(lB, 2);
    const ob = (mt * D) / 2;
    for (let dt = 0; dt < D / 8; dt++) {
      const col = dt * 8 + quad * 2;
      if (rowA < numTokens) {
        out[(i64(rowA) * numHeads + h) * D + col] = convert<T>(o[ob + dt * 4] / lA);
        out[(i64(rowA) * numHeads + h) * D + col + 1] = convert<T>(o[ob + dt * 4 + 1] / lA);
      }
      if (rowB < numTokens) {
        out[(i64(rowB) * numHeads + h) * D + col] = convert<T>(o[ob + dt * 4 + 2] / lB);
        out[(i64(rowB) * numHeads + h) * D + col + 1] = convert<T>(o[ob + dt * 4 + 3] / lB);
      }
    }
    if (quad === 0) {
      if (rowA < numTokens) lse[rowA * numHeads + h] = (mx[2 * mt] + Math.log2(lA)) * Math.LN2;
      if (rowB < numTokens) lse[rowB * numHeads + h] = (mx[2 * mt + 1] + Math.log2(lB)) * Math.LN2;
    }
  }
}

export const causalPrefillKernel = defineKernel<CausalPrefillSpec>({
  family: 'causal_prefill',
  summary: 'causal prefill attention on tensor cores (mma.sync, ldmatrix, cp.async) with per-row lse (Backend.causalAttention)',
  source: import.meta.url,
  kernel: causalPrefill,
  name: (s) => `causal_prefill_${s.dtype}_hd${s.headDim}${s.stages === 2 ? '_s2' : ''}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => 128,
  grid: (s) => [ceilDiv(arg('numTokens'), causalPrefillBlockRows(s.headDim)), arg('numHeads'), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, stages: [1, 2] as const }),
  validate: (s) =>
    checkHeadDim(s.headDim) ??
    (s.headDim % 16 === 0 ? undefined : 'head dim must be a multiple of 16') ??
    (s.stages === 1 || s.stages === 2 ? undefined : 'stages: 1 or 2'),
  unitKey: (s) => s.dtype,
});
