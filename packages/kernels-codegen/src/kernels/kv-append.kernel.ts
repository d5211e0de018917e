/**
 * K/V append (Backend.appendKv): token t of k/v [T, numKvHeads, headDim] goes to
 * (slots[t], offsets[t]) of the page pool. Blocks of 16-byte chunks of one token's K
 * and V, one chunk per thread.
 */
import { blockIdx, i64, local, threadIdx, vload, vstore, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv, mul } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { checkHeadDim, checkPageSize, VEC, type PagedSpec } from './layout.js';

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
