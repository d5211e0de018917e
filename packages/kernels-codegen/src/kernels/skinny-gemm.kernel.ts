/**
 * Skinny matrix products (Backend.matmul of a decode step): out [m, n] = x [m, k] @
 * w [n, k]^T for m <= 64 rows, f16 or bf16 in, f32 accumulation, out in the input type
 * or f32 (logits).
 *
 * A decode product is bound by memory: its weights (n * k * 2 bytes) must stream from
 * HBM once, at close to the copy rate, for all m rows, while x stays in L2. So:
 *
 * - a block owns 128 weight rows (features; 32 per warp) and one split of k; it walks
 *   the split in stages of 32 k: the stage's weight tile (128 x 32, 8 KB) and x tile
 *   (64 x 32, 4 KB) reach shared memory by 16-byte cp.async through a ring of 4 stages,
 *   3 ahead of the math (24 KB of weights in flight per block; 4 blocks fit an SM);
 *   the rows of a tile are 64 bytes, their 16-byte chunks XOR-swizzled so that ldmatrix
 *   reads are free of bank conflicts;
 * - mma.sync m16n8k16 with x rows as the A operand (16 rows per m-tile) and weight rows
 *   as the B operand (8 features per n-tile): a warp's 32 features are 4 n-tiles whose
 *   B fragments serve every m-tile; m-tiles wholly past m are skipped (warp-uniform);
 * - row invariance: x rows past m are never read from global memory, their shared rows
 *   are zeroed, and row r's sums are the same chain of mma over the same k order
 *   whatever m is and whatever the other rows hold (an mma's output element depends
 *   only on its own row and column), so row r comes out bit for bit the same in a
 *   product of any m;
 * - split k: when n / 128 blocks cannot fill the GPU (n = 4096 is 32 blocks),
 *   blockIdx.y is a split of whole stages and the splits write f32 partials
 *   [split, m, n]; skinny_gemm_reduce sums them in split order and converts. The split
 *   count (skinnyGemmSplits) depends on (n, k) only, never on m, and nothing is atomic:
 *   the results are deterministic. One split writes the output directly.
 *
 * Measured on an H100 (docs/BENCHMARKS.md, fifth session of 2026-12-06): correct and
 * row-invariant, but a 7B decode step at batch 1 (one row) took 2.2 ms more than with
 * cuBLAS, so the CUDA backend uses it only with ARKVALE_SKINNY_GEMM=1.
 */
import {
  blockDim,
  blockIdx,
  convert,
  cpAsync16,
  cpAsyncCommit,
  cpAsyncWait,
  i64,
  ldmatrixX4,
  local,
  mmaM16N8K16,
  offset,
  shared,
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
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import type { DType } from '../spec/matrix.js';

export interface SkinnyGemmSpec {
  /** x and w. */
  readonly dtype: DType;
  /** The output: the input type, or f32 (logits). */
  readonly out: DType | 'f32';
}

export interface SkinnyGemmReduceSpec {
  readonly out: DType | 'f32';
}

/** Rows of x at most. */
export const SKINNY_GEMM_MAX_ROWS = 64;
/** Weight rows (features) per block: 32 per warp. */
export const SKINNY_GEMM_FEATURES = 128;
/** k per stage of the ring. */
export const SKINNY_GEMM_STAGE_K = 32;
/**
 * The blocks skinnyGemmSplits aims for: about two per SM of a 132-SM H100 or H200, 48 KB
 * of weights in flight per SM. More splits would add f32 partials (m * n * 4 bytes each,
 * 1 MB at m = 64 and n = 4096) to write and read back.
 */
export const SKINNY_GEMM_TARGET_BLOCKS = 240;
/** Stages a split covers at least, and splits at most. */
const MIN_SPLIT_STAGES = 8;
const MAX_SPLITS = 16;

const THREADS = 128;
const STAGES = 4;
/** Elements of a stage's weight tile (128 rows of 32) and x tile (64 rows of 32). */
const WTILE = 128 * 32;
const XTILE = 64 * 32;
const STAGE = WTILE + XTILE;

/**
 * Why skinny_gemm cannot run x [m, k] @ w [n, k]^T, or undefined: m from 1 to 64, n and k
 * multiples of 64.
 */
export function skinnyGemmShapeError(m: number, n: number, k: number): string | undefined {
  if (!Number.isInteger(m) || m < 1 || m > SKINNY_GEMM_MAX_ROWS) return `skinny_gemm: m = ${m} rows, must be 1..${SKINNY_GEMM_MAX_ROWS}`;
  if (!Number.isInteger(n) || n < 64 || n % 64 !== 0) return `skinny_gemm: n = ${n} features, must be a positive multiple of 64`;
  if (!Number.isInteger(k) || k < 64 || k % 64 !== 0) return `skinny_gemm: k = ${k}, must be a positive multiple of 64`;
  return undefined;
}

/**
 * Splits of k for x [m, k] @ w [n, k]^T, from (n, k) alone (a row's result must not depend
 * on m): doubled while the blocks (n / 128 per split) stay under `targetBlocks`, each
 * split keeps at least 8 stages of 32 k, and the splits divide k's stages evenly; at
 * most 16. Llama-2-7B: 8 for [4096, 4096] and [4096, 11008], 4 for [12288, 4096], 2 for
 * [22016, 4096], 1 for the [32000, 4096] lm head (250 blocks). Throws for a shape
 * skinny_gemm refuses.
 */
export function skinnyGemmSplits(o: { readonly n: number; readonly k: number; readonly targetBlocks?: number }): number {
  const problem = skinnyGemmShapeError(1, o.n, o.k);
  if (problem) throw new RangeError(problem);
  const target = o.targetBlocks ?? SKINNY_GEMM_TARGET_BLOCKS;
  const groups = Math.ceil(o.n / SKINNY_GEMM_FEATURES);
  const stages = o.k / SKINNY_GEMM_STAGE_K;
  let splits = 1;
  while (groups * splits < target && 2 * splits <= MAX_SPLITS && stages % (2 * splits) === 0 && stages / (2 * splits) >= MIN_SPLIT_STAGES) {
    splits *= 2;
  }
  return splits;
}

/** Index of 16-byte chunk `c` (0..3) of row `r` of a tile of 32-element rows, XOR-swizzled over pairs of rows. */
function swizzled(r: i32, c: i32): i32 {
  return r * 32 + ((c ^ ((r >> 1) & 3)) << 3);
}

/** Stage `st` <- the weight rows f0.. and the x rows below m, at k0 .. k0 + 32. */
function loadStage<T extends Float16>(sm: Shared<T>, st: i32, x: GlobalIn<T>, w: GlobalIn<T>, f0: i32, k0: i32, m: i32, n: i32, k: i32, tid: i32): void {
  const base = st * STAGE;
  // 128 weight rows x 4 chunks, 4 per thread: 4 consecutive threads copy a row's 64 bytes.
  for (let i = 0; i < 4; i++) {
    const c = tid + i * THREADS;
    const r = c >> 2;
    if (f0 + r < n) cpAsync16(sm, base + swizzled(r, c & 3), w, i64(f0 + r) * k + (k0 + (c & 3) * 8));
  }
  // Up to 64 x rows: those below m only (the rest of the tile stays zero).
  for (let i = 0; i < 2; i++) {
    const c = tid + i * THREADS;
    const r = c >> 2;
    if (r < m) cpAsync16(sm, base + WTILE + swizzled(r, c & 3), x, r * k + (k0 + (c & 3) * 8));
  }
}

export function skinnyGemm<T extends Float16, O extends number>(
  _spec: SkinnyGemmSpec,
  x: GlobalIn<T>,
  w: GlobalIn<T>,
  out: Global<O>,
  partial: Global<f32>,
  m: i32,
  n: i32,
  k: i32,
  numSplits: i32,
): void {
  const tid = threadIdx.x;
  const warp = tid >> 5;
  const lane = tid & 31;
  const j = lane >> 3;
  const f0 = blockIdx.x * 128;
  const split = blockIdx.y;
  // This split's stages: whole stages of 32 k, the last split possibly shorter (or empty).
  const per = (k / 32 + numSplits - 1) / numSplits;
  const first = split * per;
  const tiles = Math.max(0, Math.min(k / 32, first + per) - first);
  // 16-row m-tiles holding rows below m; rows m .. 16 * mTiles are zero in every stage.
  const mTiles = (m + 15) / 16;
  const sm = shared<T>(STAGES * STAGE);
  const zero = local<T>(8);
  for (let e = 0; e < 8; e++) zero[e] = convert<T>(0);
  for (let c = tid; c < STAGES * 64 * 4; c += THREADS) {
    const r = (c >> 2) & 63;
    if (r >= m && r < mTiles * 16) vstore(sm, (c >> 8) * STAGE + WTILE + swizzled(r, c & 3), zero);
  }
  for (let s = 0; s < STAGES - 1; s++) {
    if (s < tiles) loadStage(sm, s, x, w, f0, (first + s) * 32, m, n, k, tid);
    // Empty groups too: the wait below counts groups.
    cpAsyncCommit();
  }

  // acc[(mt * 4 + nt) * 4 + e]: m-tile mt (x rows) by n-tile nt (8 of the warp's 32 features).
  const acc = local<f32>(64);
  for (let e = 0; e < 64; e++) acc[e] = 0;
  const af = local<T>(32);
  const bf = local<T>(16);
  const wf = warp * 32;
  // Warps past the last feature (n a multiple of 32 but not of 128) only copy.
  const active = f0 + wf < n;
  for (let t = 0; t < tiles; t++) {
    // Stage t has landed, and every warp is done with stage t - 1, which the next copy reuses.
    cpAsyncWait(STAGES - 2);
    syncthreads();
    if (t + STAGES - 1 < tiles) loadStage(sm, (t + STAGES - 1) % STAGES, x, w, f0, (first + t + STAGES - 1) * 32, m, n, k, tid);
    cpAsyncCommit();
    if (active) {
      const base = (t % STAGES) * STAGE;
      for (let ks = 0; ks < 2; ks++) {
        // B: the warp's features in two ldmatrix of 16 rows (n-tiles 2np and 2np + 1) by k16.
        for (let np = 0; np < 2; np++) {
          ldmatrixX4(offset(bf, np * 8), sm, base + swizzled(wf + np * 16 + (j >> 1) * 8 + (lane & 7), ks * 2 + (j & 1)));
        }
        // A: 16 x rows by k16 per m-tile, all loaded before the products.
        for (let mt = 0; mt < 4; mt++) {
          if (mt < mTiles) ldmatrixX4(offset(af, mt * 8), sm, base + WTILE + swizzled(mt * 16 + (j & 1) * 8 + (lane & 7), ks * 2 + (j >> 1)));
        }
        for (let mt = 0; mt < 4; mt++) {
          if (mt < mTiles) {
            for (let nt = 0; nt < 4; nt++) {
              mmaM16N8K16(offset(acc, (mt * 4 + nt) * 4), offset(af, mt * 8), offset(bf, nt * 4), offset(acc, (mt * 4 + nt) * 4));
            }
          }
        }
      }
    }
  }

  if (!active) return;
  // This lane holds x rows g and g + 8 of each m-tile, features 2q and 2q + 1 of each n-tile.
  const g = lane >> 2;
  const q = lane & 3;
  const pair = local<O>(2);
  const sums = local<f32>(2);
  for (let mt = 0; mt < 4; mt++) {
    for (let h = 0; h < 2; h++) {
      const r = mt * 16 + h * 8 + g;
      if (r < m) {
        for (let nt = 0; nt < 4; nt++) {
          const f = f0 + wf + nt * 8 + 2 * q;
          const e = (mt * 4 + nt) * 4 + h * 2;
          if (numSplits === 1) {
            pair[0] = convert<O>(acc[e]);
            pair[1] = convert<O>(acc[e + 1]);
            vstore(out, i64(r) * n + f, pair);
          } else {
            sums[0] = acc[e];
            sums[1] = acc[e + 1];
            vstore(partial, (i64(split) * m + r) * n + f, sums);
          }
        }
      }
    }
  }
}

export const skinnyGemmKernel = defineKernel<SkinnyGemmSpec>({
  family: 'skinny_gemm',
  summary:
    'x [m <= 64, k] @ w [n, k]^T on tensor cores, weights streamed once through a cp.async ring; split k writes f32 partials for skinny_gemm_reduce (Backend.matmul of decode steps)',
  source: import.meta.url,
  kernel: skinnyGemm,
  name: (s) => `skinny_gemm_${s.dtype}_to_${s.out}`,
  types: (s) => ({ T: s.dtype, O: s.out }),
  blockThreads: () => THREADS,
  grid: () => [ceilDiv(arg('n'), SKINNY_GEMM_FEATURES), arg('numSplits'), 1],
  specs: (m) =>
    m.dtype.flatMap((dtype) => [
      { dtype, out: dtype },
      { dtype, out: 'f32' as const },
    ]),
  validate: (s) => (s.out === s.dtype || s.out === 'f32' ? undefined : `skinny_gemm writes ${s.dtype} or f32, not ${s.out}`),
  unitKey: (s) => s.dtype,
});

const REDUCE_THREADS = 256;

/**
 * out[i] = the sum of partial[s * count + i] over the splits s in order, converted to the
 * output type (count = m * n, a multiple of 4): four elements per thread.
 */
export function skinnyGemmReduce<O extends number>(_spec: SkinnyGemmReduceSpec, partial: GlobalIn<f32>, out: Global<O>, count: i32, numSplits: i32): void {
  const i = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  if (i >= count) return;
  const sum = local<f32>(4);
  const part = local<f32>(4);
  const o = local<O>(4);
  vload(sum, partial, i);
  for (let s = 1; s < numSplits; s++) {
    vload(part, partial, i64(s) * count + i);
    for (let e = 0; e < 4; e++) sum[e] += part[e];
  }
  for (let e = 0; e < 4; e++) o[e] = convert<O>(sum[e]);
  vstore(out, i, o);
}

export const skinnyGemmReduceKernel = defineKernel<SkinnyGemmReduceSpec>({
  family: 'skinny_gemm_reduce',
  summary: "sums skinny_gemm's f32 split-k partials in split order into the output type",
  source: import.meta.url,
  kernel: skinnyGemmReduce,
  name: (s) => `skinny_gemm_reduce_${s.out}`,
  types: (s) => ({ O: s.out }),
  blockThreads: () => REDUCE_THREADS,
  grid: () => [ceilDiv(arg('count'), 4 * REDUCE_THREADS), 1, 1],
  specs: (m) => [...m.dtype, 'f32' as const].map((out) => ({ out })),
  unitKey: (s) => s.out,
});
