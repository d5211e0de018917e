/**
 * Whole-page copies between pools in 16-byte vectors (pages are raw words here: any
 * dtype, any geometry; `pageWords` = page bytes / 4, a multiple of 4).
 *
 * - copy_pages: slot lists given as arguments (backups device -> mapped host memory,
 *   or copies within a pool).
 * - recall_listed: the copy lists come from device memory, as select_resident writes
 *   them (copies i32 [B, 1 + 2 * maxCopies], row r read by blockIdx.z, each row
 *   [n, (src, dst) x n]), and the source is mapped pinned host memory (a device pointer
 *   from cudaHostGetDevicePointer), so one launch recalls every row's pages with no
 *   host round trip. Launch with gridDim.x = the most copies a row can hold; extra
 *   blocks return.
 */
import { blockDim, blockIdx, gridDim, i64, local, threadIdx, vload, vstore, type Global, type GlobalIn, type i32, type u32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';

/** Blocks per page: enough loads in flight to cover PCIe latency for mapped memory. */
const BLOCKS_PER_PAGE = 8;

function copyPage(src: GlobalIn<u32>, srcSlot: i32, dst: Global<u32>, dstSlot: i32, pageWords: i32): void {
  const from = i64(srcSlot) * pageWords;
  const to = i64(dstSlot) * pageWords;
  const chunk = local<u32>(4);
  for (let w = (blockIdx.y * blockDim.x + threadIdx.x) * 4; w < pageWords; w += gridDim.y * blockDim.x * 4) {
    vload(chunk, src, from + w);
    vstore(dst, to + w, chunk);
  }
}

export function copyPages(
  _spec: object,
  src: GlobalIn<u32>,
  dst: Global<u32>,
  srcSlots: GlobalIn<i32>,
  dstSlots: GlobalIn<i32>,
  numPages: i32,
  pageWords: i32,
): void {
  const i = blockIdx.x;
  if (i >= numPages) return;
  copyPage(src, srcSlots[i], dst, dstSlots[i], pageWords);
}

export function recallListed(
  _spec: object,
  hostPool: GlobalIn<u32>,
  devicePool: Global<u32>,
  copies: GlobalIn<i32>,
  batch: i32,
  maxCopies: i32,
  pageWords: i32,
): void {
  const i = blockIdx.x;
  const list = blockIdx.z * (1 + 2 * maxCopies);
  if (blockIdx.z >= batch || i >= maxCopies || i >= copies[list]) return;
  copyPage(hostPool, copies[list + 1 + 2 * i], devicePool, copies[list + 2 + 2 * i], pageWords);
}

const common = {
  source: import.meta.url,
  blockThreads: () => 256,
  specs: () => [{}],
};

export const copyPagesKernel = defineKernel<Record<string, never>>({
  ...common,
  family: 'copy_pages',
  summary: 'copies whole pages srcSlots[i] -> dstSlots[i] between pools (Backend.copyPages)',
  kernel: copyPages,
  name: () => 'copy_pages',
  grid: () => [arg('numPages'), BLOCKS_PER_PAGE, 1],
});

export const recallListedKernel = defineKernel<Record<string, never>>({
  ...common,
  family: 'recall_listed',
  summary: "recalls every batch row's pages from mapped pinned host memory by select_resident's copy lists [B, 1 + 2k] (Backend.recallListed)",
  kernel: recallListed,
  name: () => 'recall_listed',
  grid: () => [arg('maxCopies'), BLOCKS_PER_PAGE, arg('batch')],
});
