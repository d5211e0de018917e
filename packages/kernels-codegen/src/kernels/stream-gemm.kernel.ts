/**
 * Decode products of 1 to 64 rows (Backend.matmul of a decode step): out [m, n] = x [m, k]
 * @ w [n, k]^T, f16 or bf16 in, f32 accumulation, out in the input type or f32 (logits),
 * with the weights streamed from HBM straight into tensor-core fragments.
 *
 * Why: gemv reads weights at close to the copy rate but keeps a row's bits only within
 * its blocks of 4 rows; cuBLAS's padded 64-row products keep them for 64 rows at the cost
 * of 64 rows' work. skinny_gemm, which this kernel replaced, staged every weight through
 * shared memory in rows of 64 bytes and split k across blocks (partials written, then
 * reduced by a second kernel); a batch-1 step with it took 2.2 ms more than with cuBLAS
 * (docs/BENCHMARKS.md, fifth session). Here:
 * Here:
 *
 * - **k permuted inside each chunk of 32.** mma.m16n8k16's B fragment gives lane (g, q)
 *   (g = lane / 4, q = lane % 4) weight row g at k = 2q, 2q + 1, 2q + 8, 2q + 9 of a k16
 *   step. Since a dot product does not care about the order of k, lane (g, q) instead
 *   loads the 16 contiguous bytes [8q, 8q + 8) of a chunk of 32 k with one vector load,
 *   and the chunk's two k16 steps take elements 0-3 and 4-7 of it. The A fragment (x
 *   rows g and g + 8, the same k positions) is then the same 16 bytes of those x rows:
 *   two vector loads, with no shared memory and no ldmatrix.
 * - **A block owns 8 x nTiles weight rows, and its 8 warps split k** into 8 contiguous
 *   ranges of whole chunks (from k alone). Each warp streams its range in passes of
 *   several chunks whose weight loads come before any product in the code (16 bytes a
 *   lane each, 64 contiguous bytes of a row per instruction). The warps' f32 sums meet
 *   in shared memory and are added in warp order. Nothing is split across blocks, so
 *   there are no partials to write back and no second kernel.
 * - **x** (at most 64 x k) is read through the read-only path at the same offsets by
 *   every block, so after the first it comes from L1 or L2. Rows past m read row m - 1
 *   instead; their sums are never stored.
 * - **Row invariance.** Row r's result is the same chain (each warp's chunks in k
 *   order, two mma per chunk, then the warps in order) whatever m is, whatever the
 *   other rows hold (an mma's output element depends only on its own row and column),
 *   and whatever mTiles and nTiles the kernel was made for. So a row comes out bit for
 *   bit the same in a product of any m up to 64, and one step's rows need no padding.
 *
 * Measured on an H100 (docs/BENCHMARKS.md, ninth session, products-bench.mjs): one row
 * at 0.97-1.28x the floor of reading the weights (gemv 0.95-1.18x, cuBLAS padded to 64
 * rows 1.06-1.27x), faster than skinny_gemm at every row count up to 16; from 4 rows on
 * slower than cuBLAS's padded product (1.1-1.5x the floor at 4, 1.9-2.2x at 64: every
 * warp loads its own x fragments, and ptxas keeps only two or three of a pass's weight
 * loads in flight). So the CUDA backend uses it only with ARKVALE_STREAM_GEMM=1.
 *
 * Needs k a multiple of 32 (at most 2^24) and 16-byte aligned x and w
 * (streamGemmShapeError); n is free.
 */
import {
  blockIdx,
  convert,
  i64,
  local,
  mmaM16N8K16,
  offset,
  shared,
  syncthreads,
  threadIdx,
  vload,
  type Float16,
  type Global,
  type GlobalIn,
  type Local,
  type f32,
  type i32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import type { DType } from '../spec/matrix.js';

export type StreamGemmTiles = 1 | 2 | 4;
const TILES: readonly StreamGemmTiles[] = [1, 2, 4];
export interface StreamGemmSpec {
  /** x and w. */
  readonly dtype: DType;
  /** The output: the input type, or f32 (logits). */
  readonly out: DType | 'f32';
  /** 16-row m-tiles the kernel is made for: 16, 32 or 64 rows at most (streamGemmTiles). */
  readonly mTiles: StreamGemmTiles;
  /** 8-row n-tiles of weights a block owns: 8, 16 or 32 features. */
  readonly nTiles: StreamGemmTiles;
}

/** x rows at most. */
export const STREAM_GEMM_MAX_ROWS = 64;
/** Warps of a block, each a range of k: fixed, since a row's sum depends on the split. */
const WARPS = 8;
const THREADS = WARPS * 32;
/** k per chunk: one 16-byte load a lane per weight row, two k16 mma steps. */
const CHUNK = 32;
/** Weight loads a lane issues per pass (16 bytes each), whatever nTiles is. */
const LOADS_PER_PASS = 8;
/** k at most: x offsets are 32-bit (64 rows of k). */
const MAX_K = 2 ** 24;

/** Why stream_gemm cannot run x [m, k] @ w [n, k]^T, or undefined. */
export function streamGemmShapeError(m: number, n: number, k: number): string | undefined {
  if (!Number.isInteger(m) || m < 1 || m > STREAM_GEMM_MAX_ROWS) return `stream_gemm: m = ${m} rows, must be 1..${STREAM_GEMM_MAX_ROWS}`;
  if (!Number.isInteger(n) || n < 1) return `stream_gemm: n = ${n} features, must be positive`;
  if (!Number.isInteger(k) || k < CHUNK || k % CHUNK !== 0 || k > MAX_K) return `stream_gemm: k = ${k}, must be a positive multiple of ${CHUNK} up to ${MAX_K}`;
  return undefined;
}

/**
 * The kernel for m rows: the fewest m-tiles (1, 2 or 4) that hold them, and 1 n-tile (8
 * weight rows a block) up to 16 rows and 4 beyond, where a block's x fragments then
 * serve 32 weight rows: the fastest of 1, 2 and 4 on an H100 (products-bench.mjs, ninth
 * session). Every choice gives the same bits.
 */
export function streamGemmTiles(m: number): { readonly mTiles: StreamGemmTiles; readonly nTiles: StreamGemmTiles } {
  return m <= 16 ? { mTiles: 1, nTiles: 1 } : { mTiles: m <= 32 ? 2 : 4, nTiles: 4 };
}

/**
 * acc += the products of chunk `c` for the m-tiles below mTiles and the block's n-tiles,
 * the chunk's weights in wb at `slot` (nTiles x 8 elements each).
 */
function chunkProducts<T extends Float16>(
  spec: StreamGemmSpec,
  acc: Local<f32>,
  wb: Local<T>,
  slot: i32,
  x: GlobalIn<T>,
  xOff: Local<i32>,
  c: i32,
  mTiles: i32,
): void {
  const x0 = local<T>(8);
  const x1 = local<T>(8);
  const af = local<T>(8);
  for (let mt = 0; mt < spec.mTiles; mt++) {
    // m-tile 0 always holds a row: no branch around it, so the compiler cannot sink the
    // pass's weight loads into one (it did, and they went out one chunk at a time).
    if (mt === 0 || mt < mTiles) {
      vload(x0, x, xOff[2 * mt] + c * CHUNK);
      vload(x1, x, xOff[2 * mt + 1] + c * CHUNK);
      for (let ks = 0; ks < 2; ks++) {
        // The A fragment: (row g, k 2q..), (row g + 8, k 2q..), (row g, k 2q + 8..), (row g + 8, k 2q + 8..).
        af[0] = x0[4 * ks];
        af[1] = x0[4 * ks + 1];
        af[2] = x1[4 * ks];
        af[3] = x1[4 * ks + 1];
        af[4] = x0[4 * ks + 2];
        af[5] = x0[4 * ks + 3];
        af[6] = x1[4 * ks + 2];
        af[7] = x1[4 * ks + 3];
        for (let nt = 0; nt < spec.nTiles; nt++) {
          const e = (mt * spec.nTiles + nt) * 4;
          mmaM16N8K16(offset(acc, e), af, offset(wb, (slot * spec.nTiles + nt) * 8 + ks * 4), offset(acc, e));
        }
      }
    }
  }
}

/** wb at `slot` <- chunk `c` of the block's weight rows (this lane's 16 bytes of each). */
function loadChunk<T extends Float16>(spec: StreamGemmSpec, wb: Local<T>, slot: i32, w: GlobalIn<T>, wOff: Local<i64>, c: i32): void {
  const t = local<T>(8);
  for (let nt = 0; nt < spec.nTiles; nt++) {
    vload(t, w, wOff[nt] + c * CHUNK);
    for (let e = 0; e < 8; e++) wb[(slot * spec.nTiles + nt) * 8 + e] = t[e];
  }
}

export function streamGemm<T extends Float16, O extends number>(
  spec: StreamGemmSpec,
  x: GlobalIn<T>,
  w: GlobalIn<T>,
  out: Global<O>,
  m: i32,
  n: i32,
  k: i32,
): void {
  const MT = spec.mTiles;
  const NT = spec.nTiles;
  const PASS = LOADS_PER_PASS / NT;
  const ACC = MT * NT * 4;
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const g = lane >> 2;
  const q = lane & 3;
  const f0 = blockIdx.x * (8 * NT);
  const mTiles = (m + 15) >> 4;
  // This lane's weight rows (past n: row n - 1, never stored) and x rows (past m: row m - 1).
  const wOff = local<i64>(NT);
  for (let nt = 0; nt < NT; nt++) wOff[nt] = i64(Math.min(f0 + nt * 8 + g, n - 1)) * k + q * 8;
  const xOff = local<i32>(2 * MT);
  for (let h = 0; h < 2 * MT; h++) xOff[h] = Math.min(h * 8 + g, m - 1) * k + q * 8;
  const acc = local<f32>(ACC);
  for (let e = 0; e < ACC; e++) acc[e] = 0;
  const wb = local<T>(LOADS_PER_PASS * 8);

  // This warp's chunks: [c0, c1), from k alone.
  const chunks = k / CHUNK;
  const per = (chunks + WARPS - 1) / WARPS;
  const c0 = Math.min(chunks, warp * per);
  const c1 = Math.min(chunks, c0 + per);
  const passes = (c1 - c0) / PASS;
  for (let p = 0; p < passes; p++) {
    const c = c0 + p * PASS;
    // Every weight load of the pass in flight before the first product.
    for (let s = 0; s < PASS; s++) loadChunk(spec, wb, s, w, wOff, c + s);
    for (let s = 0; s < PASS; s++) chunkProducts(spec, acc, wb, s, x, xOff, c + s, mTiles);
  }
  for (let c = c0 + passes * PASS; c < c1; c++) {
    loadChunk(spec, wb, 0, w, wOff, c);
    chunkProducts(spec, acc, wb, 0, x, xOff, c, mTiles);
  }

  // The warps' sums in shared memory, [warp][element][lane] (conflict-free both ways), added in warp order.
  const red = shared<f32>(WARPS * ACC * 32);
  for (let e = 0; e < ACC; e++) red[(warp * ACC + e) * 32 + lane] = acc[e];
  syncthreads();
  for (let i = tid; i < ACC * 32; i += THREADS) {
    // Element e of lane l: m-tile mt, n-tile nt, half h (rows g, g + 8), column j.
    const l = i & 31;
    const e = i >> 5;
    const row = (e / (4 * NT)) * 16 + ((e >> 1) & 1) * 8 + (l >> 2);
    const f = f0 + ((e >> 2) % NT) * 8 + 2 * (l & 3) + (e & 1);
    if (row < m && f < n) {
      let s = red[i];
      for (let v = 1; v < WARPS; v++) s += red[v * ACC * 32 + i];
      out[i64(row) * n + f] = convert<O>(s);
    }
  }
}

export const streamGemmKernel = defineKernel<StreamGemmSpec>({
  family: 'stream_gemm',
  summary:
    "x [m <= 64, k] @ w [n, k]^T on tensor cores, weights loaded straight into mma fragments (k permuted within 32), k split over a block's warps; a row's bits the same for any m (Backend.matmul of decode steps)",
  source: import.meta.url,
  kernel: streamGemm,
  name: (s) => `stream_gemm_${s.dtype}_to_${s.out}_m${s.mTiles}_n${s.nTiles}`,
  types: (s) => ({ T: s.dtype, O: s.out }),
  blockThreads: () => THREADS,
  grid: (s) => [ceilDiv(arg('n'), 8 * s.nTiles), 1, 1],
  // The tiles streamGemmTiles picks; the others (1, 2 or 4 each) give the same bits and can
  // be generated by name, but the build need not compile them for every architecture.
  specs: (m) => m.dtype.flatMap((dtype) => [dtype, 'f32' as const].flatMap((out) => [1, 17, 33].map((rows) => ({ dtype, out, ...streamGemmTiles(rows) })))),
  validate: (s) =>
    s.out !== s.dtype && s.out !== 'f32'
      ? `stream_gemm writes ${s.dtype} or f32, not ${s.out}`
      : TILES.includes(s.mTiles) && TILES.includes(s.nTiles)
        ? undefined
        : `stream_gemm tiles m${String(s.mTiles)} n${String(s.nTiles)}: each 1, 2 or 4`,
  unitKey: (s) => s.dtype,
});
