/**
 * Embedding gather (Backend.gatherRows): out[i] = table[indices[i]] for rows of
 * `rowSize` elements; 16-byte vectors when rows allow. An index outside the table
 * (a host bug) yields a zero row rather than a read out of bounds.
 */
import { blockDim, blockIdx, convert, i64, local, threadIdx, vload, vstore, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { VEC, type DtypeSpec } from './layout.js';

export function embeddingGather<T extends Float16>(
  _spec: DtypeSpec,
  table: GlobalIn<T>,
  indices: GlobalIn<i32>,
  out: Global<T>,
  n: i32,
  rowSize: i32,
  numRows: i32,
): void {
  const i = blockIdx.x;
  if (i >= n) return;
  const r = indices[i];
  const valid = r >= 0 && r < numRows;
  const src = i64(r) * rowSize;
  const dst = i64(i) * rowSize;
  if (rowSize % VEC === 0) {
    const chunk = local<T>(VEC);
    for (let j = threadIdx.x * VEC; j < rowSize; j += blockDim.x * VEC) {
      if (valid) vload(chunk, table, src + j);
      else for (let e = 0; e < VEC; e++) chunk[e] = convert<T>(0);
      vstore(out, dst + j, chunk);
    }
  } else {
    for (let j = threadIdx.x; j < rowSize; j += blockDim.x) out[dst + j] = valid ? table[src + j] : convert<T>(0);
  }
}

export const embeddingGatherKernel = defineKernel<DtypeSpec>({
  family: 'embedding_gather',
  summary: 'gathers table rows at i32 indices (embedding lookup; Backend.gatherRows)',
  source: import.meta.url,
  kernel: embeddingGather,
  name: (s) => `embedding_gather_${s.dtype}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => 128,
  grid: () => [arg('n'), 1, 1],
  specs: (m) => m.dtype.map((dtype) => ({ dtype })),
  unitKey: (s) => s.dtype,
});
