/**
 * Decode products of one to four rows (Backend.matmul of a batch-1 to batch-4 step):
 * out [m, n] = x [m, k] @ w [n, k]^T, f16 or bf16 in, f32 accumulation, out in the
 * input type or f32 (logits).
 *
 * Such a product is the weights streamed once from HBM, and nothing else: at batch 1
 * the products are about 70% of a 7B step. cuBLAS ran them at 2.44-2.67 TB/s on an H100
 * whose copy rate is 3.0 TB/s (docs/BENCHMARKS.md, seventh session: 82% of it over a
 * step), with split-k reductions for the square ones; skinny_gemm (since replaced by
 * stream_gemm), tiles of 128 rows by 32 k, read each weight row 64 bytes at a time and
 * was slower still. So:
 *
 * - a warp owns one weight row (feature) and reads it whole, 512 contiguous bytes an
 *   instruction (16 bytes a lane), four instructions in flight before any arithmetic;
 *   the grid has a warp per feature, so there is no split of k and nothing to reduce
 *   across blocks;
 * - x rows (at most 4 x k, a few KB to 112 KB) are read through the read-only cache at
 *   the same offsets as the weights: every warp of an SM reads the same x, so after
 *   the first warp they come from L1;
 * - each lane keeps one f32 sum per x row (fma over its elements in k order), and a
 *   shuffle tree sums the lanes. Row r's sum is the same chain whatever m is and
 *   whatever the other rows hold, so it comes out bit for bit the same in a product of
 *   any m, and in the one-row and four-row specialisations alike.
 *
 * Needs k a multiple of 8 and 16-byte aligned x and w (gemvShapeError); n is free.
 */
import {
  blockDim,
  blockIdx,
  convert,
  f32,
  fma,
  i64,
  local,
  shflXor,
  threadIdx,
  vload,
  type Float16,
  type Global,
  type GlobalIn,
  type Local,
  type i32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import type { DType } from '../spec/matrix.js';

export interface GemvSpec {
  /** x and w. */
  readonly dtype: DType;
  /** The output: the input type, or f32 (logits). */
  readonly out: DType | 'f32';
  /** x rows the kernel is made for: 1 (batch 1) or 4 (2 to 4 rows, the rest skipped). */
  readonly rows: 1 | 4;
}

/** x rows at most. */
export const GEMV_MAX_ROWS = 4;
const THREADS = 256;
/** Features (weight rows) per block: a warp each. */
const FEATURES = THREADS / 32;
/** Elements a warp reads per instruction: 32 lanes x 8. */
const STEP = 256;

/** Why gemv cannot run x [m, k] @ w [n, k]^T, or undefined. */
export function gemvShapeError(m: number, n: number, k: number): string | undefined {
  if (!Number.isInteger(m) || m < 1 || m > GEMV_MAX_ROWS) return `gemv: m = ${m} rows, must be 1..${GEMV_MAX_ROWS}`;
  if (!Number.isInteger(n) || n < 1) return `gemv: n = ${n} features, must be positive`;
  if (!Number.isInteger(k) || k < 8 || k % 8 !== 0) return `gemv: k = ${k}, must be a positive multiple of 8`;
  return undefined;
}

/** acc[r] += x[r, k0 .. k0 + 8] . wv for the x rows below m (spec.rows of them at most). */
function dot8<T extends Float16>(spec: GemvSpec, acc: Local<f32>, x: GlobalIn<T>, wv: Local<T>, m: i32, k: i32, k0: i32): void {
  const xv = local<T>(8);
  for (let r = 0; r < spec.rows; r++) {
    if (r < m) {
      vload(xv, x, i64(r) * k + k0);
      let s = acc[r];
      for (let e = 0; e < 8; e++) s = fma(f32(xv[e]), f32(wv[e]), s);
      acc[r] = s;
    }
  }
}

export function gemv<T extends Float16, O extends number>(spec: GemvSpec, x: GlobalIn<T>, w: GlobalIn<T>, out: Global<O>, m: i32, n: i32, k: i32): void {
  const R = spec.rows;
  const lane = threadIdx.x & 31;
  const f = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (f >= n) return;
  const acc = local<f32>(R);
  for (let r = 0; r < R; r++) acc[r] = 0;
  const w0 = local<T>(8);
  const w1 = local<T>(8);
  const w2 = local<T>(8);
  const w3 = local<T>(8);
  const row = i64(f) * k;
  // Passes of four instructions (1024 elements), then single ones: a lane's elements are
  // visited in k order either way.
  const full = (k / (4 * STEP)) * 4 * STEP;
  for (let k0 = lane * 8; k0 < full; k0 += 4 * STEP) {
    vload(w0, w, row + k0);
    vload(w1, w, row + k0 + STEP);
    vload(w2, w, row + k0 + 2 * STEP);
    vload(w3, w, row + k0 + 3 * STEP);
    dot8(spec, acc, x, w0, m, k, k0);
    dot8(spec, acc, x, w1, m, k, k0 + STEP);
    dot8(spec, acc, x, w2, m, k, k0 + 2 * STEP);
    dot8(spec, acc, x, w3, m, k, k0 + 3 * STEP);
  }
  for (let k0 = full + lane * 8; k0 < k; k0 += STEP) {
    vload(w0, w, row + k0);
    dot8(spec, acc, x, w0, m, k, k0);
  }
  for (let r = 0; r < R; r++) {
    if (r < m) {
      let s = acc[r];
      for (let d = 16; d >= 1; d >>= 1) s += shflXor(s, d);
      if (lane === 0) out[i64(r) * n + f] = convert<O>(s);
    }
  }
}

export const gemvKernel = defineKernel<GemvSpec>({
  family: 'gemv',
  summary: 'x [m <= 4, k] @ w [n, k]^T with a warp per weight row read whole, f32 sums (Backend.matmul of batch-1 to batch-4 decode steps)',
  source: import.meta.url,
  kernel: gemv,
  name: (s) => `gemv_${s.dtype}_to_${s.out}_r${s.rows}`,
  types: (s) => ({ T: s.dtype, O: s.out }),
  blockThreads: () => THREADS,
  grid: () => [ceilDiv(arg('n'), FEATURES), 1, 1],
  specs: (m) => m.dtype.flatMap((dtype) => [dtype, 'f32' as const].flatMap((out) => [1, 4].map((rows) => ({ dtype, out, rows: rows as 1 | 4 })))),
  validate: (s) =>
    s.out !== s.dtype && s.out !== 'f32'
      ? `gemv writes ${s.dtype} or f32, not ${s.out}`
      : s.rows === 1 || s.rows === 4
        ? undefined
        : `gemv rows ${String(s.rows)}: 1 or 4`,
  unitKey: (s) => s.dtype,
});
