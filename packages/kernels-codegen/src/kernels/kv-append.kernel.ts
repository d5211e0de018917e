/**
 * K/V append (Backend.appendKv): token t of k/v [T, numKvHeads, headDim] goes to
 * (slots[t], offsets[t]) of the page pool. Blocks of 16-byte chunks of one token's K
 * and V, one chunk per thread.
 *
 * kv_append_fp8 writes fp8 pages (fp8.ts): the same chunks, each thread's 8 values
 * encoded to 8 e4m3 codes (an 8-byte store) with the scale byte of the token's K (and
 * V) row of its KV head, chosen from the row's largest magnitude (a max over the
 * headDim / 8 lanes of the head by shuffles, on f32 bits, so exact in any order) and
 * written by the row's first lane: core's appendKv, byte for byte.
 */
import {
  blockIdx,
  encodeE4m3,
  f32,
  floatBits,
  i64,
  local,
  shflXor,
  threadIdx,
  u8,
  vload,
  vstore,
  type Float16,
  type Global,
  type GlobalIn,
  type i32,
  type u32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv, mul } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { fp8InverseFactor, fp8PageBytes, fp8ScaleBase, fp8ScaleByte } from './fp8.js';
import { checkHeadDim, checkPageSize, checkPowerOfTwoHeadDim, VEC, type PagedSpec } from './layout.js';

const THREADS = 128;

export function kvAppend<T extends Float16>(
  spec: PagedSpec,
  k: GlobalIn<T>,
  v: GlobalIn<T>,
  slots: GlobalIn<i32>,
  offsets: GlobalIn<i32>,
  pool: Global<T>,
  numTokens: i32,
  numKvHeads: i32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  const t = blockIdx.x;
  // One 16-byte chunk of K and of V per thread, blockIdx.y picking the block of chunks: a
  // decode step appends a handful of tokens, and one block per token looped over its
  // chunks, waiting on each iteration's loads in turn.
  const i = blockIdx.y * THREADS + threadIdx.x;
  if (t >= numTokens || i >= numKvHeads * (D / VEC)) return;
  const slot = slots[t];
  const off = offsets[t];
  // A bad slot or offset would corrupt another page: skip the token (the host checks them).
  if (slot < 0 || off < 0 || off >= P) return;
  const headElems = P * D;
  const pageBase = i64(slot) * (2 * numKvHeads * headElems);
  const kc = local<T>(VEC);
  const vc = local<T>(VEC);
  const h = i / (D / VEC);
  const c = (i % (D / VEC)) * VEC;
  const src = (t * numKvHeads + h) * D + c;
  const dst = pageBase + (h * headElems + off * D + c);
  vload(kc, k, src);
  vload(vc, v, src);
  vstore(pool, dst, kc);
  vstore(pool, dst + numKvHeads * headElems, vc);
}

export const kvAppendKernel = defineKernel<PagedSpec>({
  family: 'kv_append',
  summary: "writes each token's K/V into its page slot and offset (Backend.appendKv)",
  source: import.meta.url,
  kernel: kvAppend,
  name: (s) => `kv_append_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => THREADS,
  grid: (s) => [arg('numTokens'), ceilDiv(mul(arg('numKvHeads'), s.headDim / VEC), THREADS), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? checkPageSize(s.pageSize),
  unitKey: (s) => s.dtype,
});

export function kvAppendFp8<T extends Float16>(
  spec: PagedSpec,
  k: GlobalIn<T>,
  v: GlobalIn<T>,
  slots: GlobalIn<i32>,
  offsets: GlobalIn<i32>,
  pool: Global<u8>,
  numTokens: i32,
  numKvHeads: i32,
): void {
  const D = spec.headDim;
  const P = spec.pageSize;
  // Lanes per KV head: a power of two up to 32, so a head's lanes are one aligned segment of a warp.
  const W = D / VEC;
  const t = blockIdx.x;
  const i = blockIdx.y * THREADS + threadIdx.x;
  // Both returns are uniform over the block (one token per block).
  if (t >= numTokens) return;
  const slot = slots[t];
  const off = offsets[t];
  if (slot < 0 || off < 0 || off >= P) return;
  // Lanes past the last head take part in the shuffles below and return after them.
  const active = i < numKvHeads * W;
  const h = i / W;
  const c = (i % W) * VEC;
  const kc = local<T>(VEC);
  const vc = local<T>(VEC);
  let ka: u32 = 0;
  let va: u32 = 0;
  if (active) {
    const src = (t * numKvHeads + h) * D + c;
    vload(kc, k, src);
    vload(vc, v, src);
    for (let j = 0; j < VEC; j++) {
      ka = Math.max(ka, floatBits(f32(kc[j])) & 0x7fffffff);
      va = Math.max(va, floatBits(f32(vc[j])) & 0x7fffffff);
    }
  }
  // The rows' largest magnitudes (as bits: a NaN counts as the largest) over the head's W lanes.
  for (let o = W / 2; o > 0; o >>= 1) {
    ka = Math.max(ka, shflXor(ka, o, W));
    va = Math.max(va, shflXor(va, o, W));
  }
  if (!active) return;
  const ks = fp8ScaleByte(ka);
  const vs = fp8ScaleByte(va);
  const kMul = fp8InverseFactor(ks);
  const vMul = fp8InverseFactor(vs);
  const pageBase = i64(slot) * fp8PageBytes(spec, numKvHeads);
  const dst = pageBase + ((h * P + off) * D + c);
  // x * 2^(127 - s) is exact (in f32 as in core's double), so the only rounding is the encoding's.
  const codes = local<u8>(VEC);
  for (let j = 0; j < VEC; j++) codes[j] = encodeE4m3(f32(kc[j]) * kMul);
  vstore(pool, dst, codes);
  for (let j = 0; j < VEC; j++) codes[j] = encodeE4m3(f32(vc[j]) * vMul);
  vstore(pool, dst + numKvHeads * P * D, codes);
  if (c === 0) {
    const scales = pageBase + fp8ScaleBase(spec, numKvHeads);
    pool[scales + (h * P + off)] = u8(ks);
    pool[scales + ((numKvHeads + h) * P + off)] = u8(vs);
  }
}

export const kvAppendFp8Kernel = defineKernel<PagedSpec>({
  family: 'kv_append_fp8',
  summary: "writes each token's K/V into its fp8 page slot and offset: e4m3 codes and a scale byte per row (Backend.appendKv, kvDtype fp8)",
  source: import.meta.url,
  kernel: kvAppendFp8,
  name: (s) => `kv_append_fp8_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => THREADS,
  grid: (s) => [arg('numTokens'), ceilDiv(mul(arg('numKvHeads'), s.headDim / VEC), THREADS), 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkPowerOfTwoHeadDim(s.headDim) ?? checkPageSize(s.pageSize),
  unitKey: (s) => s.dtype,
});
