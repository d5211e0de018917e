/**
 * target[updates[i, 0]] := updates[i, 1] for i32 target and updates [n, 2] with
 * distinct indices (Backend.scatterI32): how a decode step writes the page-table
 * entries the host planned (new pages' slots, digest rows, host slots) without
 * reading the tables back. One thread per update.
 */
import { blockDim, blockIdx, threadIdx, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';

const THREADS = 256;

export function scatterI32(_spec: object, target: Global<i32>, updates: GlobalIn<i32>, n: i32, length: i32): void {
  const i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const at = updates[2 * i];
  // The updates are never read on the host, so an index outside the target is skipped
  // here rather than refused there.
  if (at >= 0 && at < length) target[at] = updates[2 * i + 1];
}

export const scatterI32Kernel = defineKernel<Record<string, never>>({
  family: 'scatter_i32',
  summary: 'i32 scatter of (flat index, value) pairs (Backend.scatterI32)',
  source: import.meta.url,
  kernel: scatterI32,
  name: () => 'scatter_i32',
  blockThreads: () => THREADS,
  grid: () => [ceilDiv(arg('n'), THREADS), 1, 1],
  specs: () => [{}],
});
