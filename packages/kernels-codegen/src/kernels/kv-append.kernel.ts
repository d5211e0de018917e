/**
 * K/V append (Backend.appendKv): token t of k/v [T, numKvHeads, headDim] goes to
 * (slots[t], offsets[t]) of the page pool. One block per token; each thread moves
 * 16-byte vectors of K and V.
 */
import { blockDim, blockIdx, i64, local, threadIdx, vload, vstore, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { checkHeadDim, checkPageSize, VEC, type PagedSpec } from './layout.js';

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
  if (t >= numTokens) return;
  const slot = slots[t];
  const off = offsets[t];
  // A bad slot or offset would corrupt another page: skip the token (the host checks them).
  if (slot < 0 || off < 0 || off >= P) return;
  const headElems = P * D;
  const pageBase = i64(slot) * (2 * numKvHeads * headElems);
  const chunk = local<T>(VEC);
  for (let i = threadIdx.x; i < numKvHeads * (D / VEC); i += blockDim.x) {
    const h = i / (D / VEC);
    const c = (i % (D / VEC)) * VEC;
    const src = (t * numKvHeads + h) * D + c;
    const dst = pageBase + (h * headElems + off * D + c);
    vload(chunk, k, src);
    vstore(pool, dst, chunk);
    vload(chunk, v, src);
    vstore(pool, dst + numKvHeads * headElems, chunk);
  }
}

export const kvAppendKernel = defineKernel<PagedSpec>({
  family: 'kv_append',
  summary: 'writes each token\'s K/V into its page slot and offset (Backend.appendKv)',
  source: import.meta.url,
  kernel: kvAppend,
  name: (s) => `kv_append_${s.dtype}_hd${s.headDim}_ps${s.pageSize}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => 128,
  grid: () => [arg('numTokens'), 1, 1],
  specs: (m) => product({ dtype: m.dtype, headDim: m.headDim, pageSize: m.pageSize }),
  validate: (s) => checkHeadDim(s.headDim) ?? checkPageSize(s.pageSize),
  unitKey: (s) => s.dtype,
});
