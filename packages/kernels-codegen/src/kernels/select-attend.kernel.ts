/**
 * Quest's attention lists for a whole decode batch without a host round trip
 * (Backend.selectAttend; semantics of core's reference selectAttend), one block per
 * (batch row, selection group), after estimate_rows has written the row's candidate
 * scores [B, groups, maxCandidates]:
 *
 * 1. The group's top k candidates by (score desc, page asc): every candidate's 64-bit
 *    key (scoreKey, tieKey with no residency bit) is distinct, and select_resident's
 *    radix select (kthLargest) finds the k-th largest, usually in 4 passes of a shared
 *    histogram; a candidate is chosen when its key is at least that one. (A rank count
 *    per candidate, O(candidates x k) reads a block, took about 6 ms of a 4 x 30k step
 *    at the 7B shape: 96 blocks a layer, each thread's loop waiting on its loads.)
 * 2. Each thread takes a contiguous range of the row's pages 0..numPages-1. Pages
 *    that are not candidates are always listed; an exclusive scan of each thread's
 *    listed pages gives their positions, so the list (the page tables' slots) comes
 *    out in page order, padded with -1. The caller's workspace `flags` [B, groups,
 *    maxCandidates] holds the radix select's membership (all candidates), then each
 *    thread's choices for its own range.
 *
 * The tables are only read: Quest moves no page.
 */
import {
  blockDim,
  blockIdx,
  i64,
  local,
  offset,
  shared,
  syncthreads,
  threadIdx,
  type Global,
  type GlobalIn,
  type f32,
  type i32,
  type u32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { atLeast, blockScan, DIGITS, HELD, holdChunk, kthLargest, scoreKey, tieKey, TOP } from './select-resident.kernel.js';

const THREADS = 256;
/** Columns of `rows` (core's SELECT_ROW_FIELDS). */
const ROW_FIELDS = 5;

export function selectAttend(
  _spec: object,
  // Written by estimate_rows; writable here only because kthLargest also takes it as its `best`.
  scores: Global<f32>,
  rows: GlobalIn<i32>,
  tables: GlobalIn<i32>,
  flags: Global<i32>,
  pageTable: Global<i32>,
  pageCounts: Global<i32>,
  lastPageLens: Global<i32>,
  batch: i32,
  groups: i32,
  k: i32,
  maxCandidates: i32,
  maxPages: i32,
  tablePages: i32,
): void {
  const g = blockIdx.x;
  const r = blockIdx.y;
  if (r >= batch || g >= groups) return;
  const tid = threadIdx.x;
  const scratch = shared<i32>(32);
  const scan = local<i32>(2);
  const desc = r * ROW_FIELDS;
  // A row that claims more than the workspaces or its table row hold is the caller's
  // error (the reference refuses it); clamped here so that it stays in bounds.
  const numPages = Math.min(rows[desc + 1], tablePages);
  const first = rows[desc + 2];
  const count = Math.min(rows[desc + 3], maxCandidates);
  const slots = i64(rows[desc]) * 3 * tablePages;
  const lg = r * groups + g;
  const vals = offset(scores, lg * maxCandidates);
  const chosen = offset(flags, lg * maxCandidates);
  // The k-th largest key among the candidates (every block thread takes part: kthLargest synchronises).
  const hist = shared<i32>(DIGITS);
  const res = shared<i32>(3);
  const key = local<u32>(2);
  const hf = local<i32>(HELD);
  const hv = local<f32>(HELD);
  for (let e = tid; e < DIGITS; e += blockDim.x) hist[e] = 0;
  // Every candidate is a member, with no residency bit: ties go to the lower page.
  for (let e = tid; e < count; e += blockDim.x) chosen[e] = 0;
  syncthreads();
  const kk = Math.min(k, count);
  if (kk > 0) {
    if (count <= HELD * blockDim.x) holdChunk(TOP, vals, vals, chosen, 0, count, hf, hv);
    kthLargest(TOP, vals, vals, chosen, count, kk, hf, hv, hist, res, key);
  }
  syncthreads();
  const per = (numPages + blockDim.x - 1) / blockDim.x;
  const from = Math.min(tid * per, numPages);
  const to = Math.min(from + per, numPages);
  let mine = 0;
  for (let p = from; p < to; p++) {
    const i = p - first;
    let take = 1;
    if (i >= 0 && i < count) {
      take = kk > 0 && atLeast(scoreKey(vals[i]), tieKey(0, i), key[0], key[1]) ? 1 : 0;
      chosen[i] = take;
    }
    mine += take;
  }
  blockScan(mine, scratch, scan);
  let at = scan[0];
  const listed = Math.min(scan[1], maxPages);
  const list = lg * maxPages;
  for (let p = from; p < to; p++) {
    const i = p - first;
    if (i < 0 || i >= count || chosen[i] !== 0) {
      // More listed pages than maxPages is the caller's error; the list stays in bounds.
      if (at < maxPages) pageTable[list + at] = tables[slots + p];
      at++;
    }
  }
  for (let e = listed + tid; e < maxPages; e += blockDim.x) pageTable[list + e] = -1;
  if (tid === 0) {
    pageCounts[lg] = listed;
    lastPageLens[lg] = rows[desc + 4];
  }
}

export const selectAttendKernel = defineKernel<Record<string, never>>({
  family: 'select_attend',
  summary:
    "per (batch row, group): Quest's top k candidates (a radix select) plus every other page, listed in page order through the page tables (Backend.selectAttend)",
  source: import.meta.url,
  kernel: selectAttend,
  name: () => 'select_attend',
  blockThreads: () => THREADS,
  grid: () => [arg('groups'), arg('batch'), 1],
  specs: () => [{}],
});
