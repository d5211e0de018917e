/**
 * The first half of ArkVale's device selection (Backend.selectResident): each head
 * group's top k candidates of each batch row, one block per (group, batch row), after
 * estimate_rows has written the scores [B, groups, maxCandidates]. select_resident then
 * plans and applies the recalls from these choices, one block per row.
 *
 * The block writes its candidates' flags into the caller's workspace `chosen` [B,
 * groups, maxCandidates]: RESIDENT where the page table holds a slot, then CHOSEN for
 * the group's k best by (score desc, resident first, index asc). Every candidate's
 * 64-bit key (scoreKey, tieKey) is distinct, and the k-th largest is found by
 * select_resident's radix select (kthLargestEach, one slot); k >= candidates takes them
 * all, k = 0 none.
 *
 * These searches ran inside select_resident, one block a row: 4 blocks for a whole H100
 * at batch 4, each running 8 groups' searches over 4,096 candidates (the 8B step at
 * 128k), 17.8 to 23.4 us a layer (docs/BENCHMARKS.md, tenth and eleventh sessions). A
 * block per group runs them side by side, each over its own candidates' keys.
 */
import { blockDim, blockIdx, i64, offset, shared, syncthreads, threadIdx, type Global, type GlobalIn, type f32, type i32, type u32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { atLeast, CHOSEN, DIGITS, kthLargestEach, RESIDENT, ROW_FIELDS, scoreKey, tieKey, TOP } from './select-resident.kernel.js';

const THREADS = 512;

export function selectTop(
  _spec: object,
  // Written by estimate_rows; writable here only because kthLargestEach also takes it as its `best`.
  scores: Global<f32>,
  rows: GlobalIn<i32>,
  tables: GlobalIn<i32>,
  chosen: Global<i32>,
  batch: i32,
  groups: i32,
  k: i32,
  maxCandidates: i32,
  tablePages: i32,
): void {
  const g = blockIdx.x;
  const r = blockIdx.y;
  if (r >= batch || g >= groups) return;
  const tid = threadIdx.x;
  const desc = r * ROW_FIELDS;
  const first = rows[desc + 2];
  // A row that claims more than the workspace holds is the caller's error (the
  // reference refuses it); clamped here so that it stays in bounds.
  const count = Math.min(rows[desc + 3], maxCandidates);
  const slots = i64(rows[desc]) * 3 * tablePages;
  const lg = r * groups + g;
  const vals = offset(scores, lg * maxCandidates);
  const flags = offset(chosen, lg * maxCandidates);
  const hist = shared<i32>(DIGITS);
  // The k-th key (elements 0 and 1) and the rank still sought. Sized so that only the
  // last array is smaller than 16 bytes: the manifest counts every shared array from a
  // 16-byte boundary, where nvcc packs small ones, and turns a one-element array into a
  // scalar.
  const key = shared<u32>(4);
  const need = shared<i32>(2);
  for (let e = tid; e < DIGITS; e += blockDim.x) hist[e] = 0;
  // Every loop over candidates gives candidate e to the same thread, so a thread reads
  // back only its own flags until kthLargestEach's barriers.
  for (let e = tid; e < count; e += blockDim.x) flags[e] = tables[slots + first + e] >= 0 ? RESIDENT : 0;
  const kk = Math.min(k, count);
  if (tid === 0) {
    key[0] = 0;
    key[1] = 0;
    // 0 where every candidate is taken: the key stays 0, which every candidate reaches.
    need[0] = kk < count ? kk : 0;
  }
  syncthreads();
  if (kk > 0) {
    kthLargestEach(TOP, 1, vals, 0, vals, flags, count, hist, key, need);
    for (let e = tid; e < count; e += blockDim.x) {
      const f = flags[e];
      if (atLeast(scoreKey(vals[e]), tieKey(f & RESIDENT, e), key[0], key[1])) flags[e] = f | CHOSEN;
    }
  }
}

export const selectTopKernel = defineKernel<Record<string, never>>({
  family: 'select_top',
  summary: "per (head group, batch row): the group's top k candidates for select_resident, as residency and choice flags (Backend.selectResident)",
  source: import.meta.url,
  kernel: selectTop,
  name: () => 'select_top',
  blockThreads: () => THREADS,
  grid: () => [arg('groups'), arg('batch'), 1],
  specs: () => [{}],
});
