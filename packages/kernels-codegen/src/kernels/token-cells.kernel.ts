/**
 * H2O's and TOVA's eviction for a whole decode batch without a host round trip
 * (Backend.placeTokenCells, evictTokenCells; semantics of core's reference
 * token-cells.ts), over the token-cell tables: per row [free cell, page slots x pages,
 * positions x cells, score bits x cells] (core's tokenTableLayout).
 *
 * place_token_cells, one thread per batch row, before the append: a row with a free
 * cell writes that cell's (slot, offset) into the step's append targets and puts the
 * token there (position, score 0, no free cell).
 *
 * evict_token_cells, one block per batch row, after paged attention:
 * 1. the scores of the cells in use are updated from list 0 of the row's token scores
 *    (added or replaced; each thread its own cells);
 * 2. a full row keeps its `recentKept` most recent positions: positions are distinct,
 *    so those are the positions >= the recentKept-th largest. H2O's rows hold them as
 *    one run ending at the newest, which one block-wide count confirms; otherwise they
 *    are found by bisection on block-wide counts (at most 31 rounds);
 * 3. the victim is the lowest (score, position) among the other cells: each thread's
 *    best, then a warp and a block reduction on that order, which is total (distinct
 *    positions), so the result is the host's loop's whatever the reduction order;
 * 4. thread 0 frees it (position -1, score 0, the free cell) and lists it.
 *
 * Batch rows must name distinct table rows (each block updates its own).
 */
import {
  bitsToFloat,
  blockDim,
  blockIdx,
  floatBits,
  i32,
  i64,
  shared,
  shflXor,
  syncthreads,
  threadIdx,
  u32,
  type Global,
  type GlobalIn,
  type Shared,
  type bool,
  type f32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { blockCount } from './common.js';

const THREADS = 256;
const PLACE_THREADS = 128;
/** Columns of `rows` (core's TOKEN_ROW_FIELDS): table row, position of the step's token, cells in use. */
const ROW_FIELDS = 3;

export function placeTokenCells(
  _spec: object,
  rows: GlobalIn<i32>,
  tables: Global<i32>,
  slots: Global<i32>,
  offsets: Global<i32>,
  batch: i32,
  pages: i32,
  pageSize: i32,
): void {
  const r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= batch) return;
  const cells = pages * pageSize;
  const base = i64(rows[r * ROW_FIELDS]) * (1 + pages + 2 * cells);
  const cell = tables[base];
  // No free cell: the host placed the token in a new cell, and its target stands.
  if (cell < 0 || cell >= cells) return;
  slots[r] = tables[base + 1 + cell / pageSize];
  offsets[r] = cell % pageSize;
  tables[base + 1 + pages + cell] = rows[r * ROW_FIELDS + 1];
  tables[base + 1 + pages + cells + cell] = 0;
  tables[base] = -1;
}

export const placeTokenCellsKernel = defineKernel<Record<string, never>>({
  family: 'place_token_cells',
  summary: "per batch row: a free token cell (the last step's victim) becomes the append target and takes the token (Backend.placeTokenCells)",
  source: import.meta.url,
  kernel: placeTokenCells,
  name: () => 'place_token_cells',
  blockThreads: () => PLACE_THREADS,
  grid: () => [ceilDiv(arg('batch'), PLACE_THREADS), 1, 1],
  specs: () => [{}],
});

/** Whether (s, p) goes before (best, bestPos) in the victim order: a held cell, a lower score, then a lower position. */
function before(s: f32, p: i32, best: f32, bestPos: i32): bool {
  return p >= 0 && (bestPos < 0 || s < best || (s === best && p < bestPos));
}

/** Integer maximum over the block, like blockCount. */
function blockMaxInt(v: i32, scratch: Shared<i32>): i32 {
  const warp = threadIdx.x >> 5;
  for (let o = 16; o > 0; o >>= 1) v = Math.max(v, shflXor(v, o));
  if ((threadIdx.x & 31) === 0) scratch[warp] = v;
  syncthreads();
  let best = v;
  for (let w = 0; w < blockDim.x >> 5; w++) best = Math.max(best, scratch[w]);
  syncthreads();
  return best;
}

/** Held cells (position >= 0) at position x or later, over the block. */
function heldFrom(tables: Global<i32>, posAt: i64, filled: i32, x: i32, scratch: Shared<i32>): i32 {
  let n = 0;
  for (let c = threadIdx.x; c < filled; c += blockDim.x) if (tables[posAt + c] >= x) n++;
  return blockCount(n, scratch);
}

export function evictTokenCells(
  _spec: object,
  tokenScores: GlobalIn<f32>,
  rows: GlobalIn<i32>,
  tables: Global<i32>,
  victims: Global<i32>,
  batch: i32,
  pages: i32,
  cells: i32,
  listWidth: i32,
  listStride: i32,
  accumulate: i32,
  recentKept: i32,
): void {
  const r = blockIdx.x;
  if (r >= batch) return;
  const tid = threadIdx.x;
  const counts = shared<i32>(32);
  const bestScore = shared<f32>(32);
  const bestPos = shared<i32>(32);
  const bestCell = shared<i32>(32);
  const base = i64(rows[r * ROW_FIELDS]) * (1 + pages + 2 * cells);
  const posAt = base + 1 + pages;
  const scoreAt = posAt + cells;
  // More cells in use than the row or its list holds is the caller's error (the reference refuses it); clamped to stay in bounds.
  const filled = Math.min(Math.min(rows[r * ROW_FIELDS + 2], cells), listWidth);
  const probs = i64(r) * listStride;
  for (let c = tid; c < filled; c += blockDim.x) {
    const p = tokenScores[probs + c];
    const s: f32 = accumulate !== 0 ? bitsToFloat(u32(tables[scoreAt + c])) + p : p;
    tables[scoreAt + c] = i32(floatBits(s));
  }
  if (filled < cells) {
    if (tid === 0) victims[r] = -1;
    return;
  }
  // Positions from keepFrom on are kept: none when recentKept is 0 (the newest is below it).
  let newest = -1;
  for (let c = tid; c < filled; c += blockDim.x) newest = Math.max(newest, tables[posAt + c]);
  newest = blockMaxInt(newest, counts);
  let keepFrom = newest + 1;
  // A row kept by H2O's own rule holds its recentKept newest positions in one run, which one count confirms:
  // exactly recentKept held cells from there on are the most recent ones (the bisection finds the same set).
  const guess = newest - recentKept + 1;
  if (recentKept > 0 && guess >= 0 && heldFrom(tables, posAt, filled, guess, counts) === recentKept) keepFrom = guess;
  else if (recentKept > 0) {
    if (heldFrom(tables, posAt, filled, 0, counts) < recentKept) keepFrom = 0;
    else {
      // At least recentKept held cells from lo on, fewer (none) from hi on.
      let lo = 0;
      let hi = newest + 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (heldFrom(tables, posAt, filled, mid, counts) >= recentKept) lo = mid;
        else hi = mid;
      }
      keepFrom = lo;
    }
  }
  let s: f32 = 0;
  let p = -1;
  let cell = -1;
  for (let c = tid; c < filled; c += blockDim.x) {
    const q = tables[posAt + c];
    const t = bitsToFloat(u32(tables[scoreAt + c]));
    if (q < keepFrom && before(t, q, s, p)) {
      s = t;
      p = q;
      cell = c;
    }
  }
  for (let o = 16; o > 0; o >>= 1) {
    const s2 = shflXor(s, o);
    const p2 = shflXor(p, o);
    const c2 = shflXor(cell, o);
    if (before(s2, p2, s, p)) {
      s = s2;
      p = p2;
      cell = c2;
    }
  }
  if ((tid & 31) === 0) {
    bestScore[tid >> 5] = s;
    bestPos[tid >> 5] = p;
    bestCell[tid >> 5] = cell;
  }
  syncthreads();
  if (tid !== 0) return;
  for (let w = 1; w < blockDim.x >> 5; w++) {
    if (before(bestScore[w], bestPos[w], s, p)) {
      s = bestScore[w];
      p = bestPos[w];
      cell = bestCell[w];
    }
  }
  victims[r] = cell;
  if (cell >= 0) {
    tables[posAt + cell] = -1;
    tables[scoreAt + cell] = 0;
    tables[base] = cell;
  }
}

export const evictTokenCellsKernel = defineKernel<Record<string, never>>({
  family: 'evict_token_cells',
  summary:
    "per batch row: token-cell scores updated from the step's attention, and a full row's victim (lowest score outside the recent positions, ties to the lower position) freed (Backend.evictTokenCells)",
  source: import.meta.url,
  kernel: evictTokenCells,
  name: () => 'evict_token_cells',
  blockThreads: () => THREADS,
  grid: () => [arg('batch'), 1, 1],
  specs: () => [{}],
});
