/**
 * ArkVale's selection for a whole decode batch without a host round trip
 * (Backend.selectResident; semantics of core's reference selectResident), one block
 * per batch row, after estimate_rows has written the row's candidate scores:
 *
 * 1. Residency (page table slot >= 0) and the best score over groups of every
 *    candidate, into the caller's workspaces `flags` and `best` [B, maxCandidates].
 * 2. Per group, the top k by (score desc, resident first, index asc): every candidate
 *    gets a distinct 64-bit key in that order (scoreKey, tieKey) and the k-th largest
 *    is found by a radix select, 8-bit digits from the top with a shared histogram per
 *    pass; usually 4 passes, since a pass whose digit bucket holds exactly the keys
 *    still needed ends the search.
 * 3. Wanted = chosen and not resident, victims = resident and not chosen; n = the
 *    fewer of the two (no free slots: every recall takes a victim's slot). Only the n
 *    best wanted (best desc, index asc) and the n first victims (best asc, index asc)
 *    matter: a radix select finds each cut (skipped when all of them are taken), the
 *    pages above it are gathered in shared memory and ranked by counting among n.
 * 4. Recall j moves wanted page j into victim j's slot (the victim's becomes -1) and is
 *    listed in `plan` [n, (page, victim page) x n] and `copies` [n, (host slot, slot) x n],
 *    rows of 1 + 2 * k * groups (each group chooses k); the rest of both rows is 0.
 * 5. The attention list: the slot of every page 0..numPages-1 that is resident, in
 *    page order (an exclusive scan over contiguous page ranges), padded with -1.
 *
 * Batch rows must name distinct table rows (each block updates its own). On an H200 a
 * batch of 8 rows of 960 candidates (k 29, 2 recalls a row) takes 10.5 us from launch
 * to end, of which an empty launch takes 3.7; 256 or 1024 threads per block were slower.
 * On an H100 at 4 rows of 4,096 candidates and one group (the 8B step at 128k) it took
 * 17.8 us. Three changes measured there were slower, and are gone (docs/BENCHMARKS.md,
 * eleventh session): the searches as slots of one pass loop, one a warp, with the wanted
 * and victim cuts together (20.3 us); that with a warp's keys counted by one atomic a
 * bucket (ballot; 23.4 us); and the top k moved to a kernel of its own, a block per
 * (group, row) (14.5 + 12.0 us: the 8B step has one group, so no more blocks). That
 * 17.8 us was before candidates were held in registers (HELD), which no kernel timing
 * has measured yet (docs/BENCHMARKS.md, fourteenth session).
 */
import {
  atomicAdd,
  blockDim,
  blockIdx,
  floatBits,
  i32,
  i64,
  local,
  offset,
  shared,
  shflUp,
  shflXor,
  syncthreads,
  threadIdx,
  u32,
  type Global,
  type GlobalIn,
  type Local,
  type Shared,
  type bool,
  type f32,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';

const THREADS = 512;
/** Recalls one row can plan (the shared lists' length); Backend.selectResident refuses a larger k x groups. */
export const MAX_RECALLS = 1024;
/** Columns of `rows` (core's SELECT_ROW_FIELDS). */
const ROW_FIELDS = 5;
/** Buckets of a radix select pass (8-bit digits): the size of kthLargest's shared histogram. */
export const DIGITS = 256;
// Bits of `flags`.
const RESIDENT = 1;
const CHOSEN = 2;
/** The flags of a register slot past the row's candidates (holdChunk). */
const OUTSIDE = -1;
/**
 * Candidates a thread holds in registers at a time (holdChunk): a chunk is HELD x
 * blockDim.x candidates, 4,096 here (the 8B step at 128k with pages of 32 has 4,090).
 * Loops over candidates load a chunk's slots together, then use them: a loop that
 * loaded one candidate at a time between its stores and atomics waited out a memory
 * latency per candidate, and a radix pass is cheap once the keys are in registers.
 */
export const HELD = 8;
// What a radix select ranks: a group's top k, the wanted pages, the victims.
export const TOP = 0;
const WANTED = 1;
const VICTIM = 2;

/** Scores in an unsigned order: larger float, larger key (-0 counts as +0). */
export function scoreKey(s: f32): u32 {
  const b = floatBits(s + 0.0);
  return (b & 0x80000000) !== 0 ? ~b : b | 0x80000000;
}

/** Low half of a candidate's key: resident first, then lower index first. */
export function tieKey(resident: i32, i: i32): u32 {
  return (u32(resident !== 0 ? 1 : 0) << 31) | u32(0x7fffffff - i);
}

/** Whether the 64-bit key (hi, lo) is at least (thHi, thLo). */
export function atLeast(hi: u32, lo: u32, thHi: u32, thLo: u32): bool {
  return hi > thHi || (hi === thHi && lo >= thLo);
}

function isMember(mode: i32, f: i32): bool {
  if (f === OUTSIDE) return false;
  if (mode === WANTED) return (f & CHOSEN) !== 0 && (f & RESIDENT) === 0;
  if (mode === VICTIM) return (f & CHOSEN) === 0 && (f & RESIDENT) !== 0;
  return true;
}

/** High key half: the score (top k, wanted) or the reversed best score (victims, smallest first). */
function keyHi(mode: i32, v: f32): u32 {
  const s = scoreKey(v);
  return mode === VICTIM ? ~s : s;
}

/** Low key half: residency then index for the top k, the index alone otherwise (lower first). */
function keyLo(mode: i32, f: i32, i: i32): u32 {
  return mode === TOP ? tieKey(f & RESIDENT, i) : u32(0x7fffffff - i);
}

function warpSumInt(v: i32): i32 {
  for (let o = 16; o > 0; o >>= 1) v += shflXor(v, o);
  return v;
}

/**
 * Loads chunk `base` of a row's candidates into this thread's registers: slot j holds
 * candidate base + tid + j x blockDim.x (the candidate every loop over candidates gives
 * this thread), its flags in hf (OUTSIDE past count) and the value a search ranks in hv
 * (`scores` for the top k, `best` for wanted pages and victims). The loads are all issued
 * before any is used.
 */
export function holdChunk(
  mode: i32,
  scores: GlobalIn<f32>,
  best: Global<f32>,
  flags: Global<i32>,
  base: i32,
  count: i32,
  hf: Local<i32>,
  hv: Local<f32>,
): void {
  for (let j = 0; j < HELD; j++) {
    const i = base + threadIdx.x + j * blockDim.x;
    let f = OUTSIDE;
    let v: f32 = 0;
    if (i < count) {
      f = flags[i];
      v = mode === TOP ? scores[i] : best[i];
    }
    hf[j] = f;
    hv[j] = v;
  }
}

/**
 * The kk-th largest key among the members for `mode` (0 < kk <= members), into key[0]
 * (high) and key[1] (low) of every thread, ranking `scores` (top k of a group) or
 * `best` (wanted, victims). `best` and `flags` are written by this kernel, so they are
 * never read through a read-only (`const __restrict__`, non-coherent cache) pointer.
 * A row of one chunk (count <= HELD x blockDim.x) must already be held in hf and hv
 * (holdChunk at base 0, for this mode): every pass then counts from registers; a
 * longer row is loaded again, chunk by chunk, at every pass.
 * Each pass counts the next digit of the members that share the prefix found so far;
 * warp 0 finds the digit holding the kk-th key, clears the histogram (so it is zero
 * between calls) and publishes the digit in res. The caller zeroes `hist` once; res is
 * written only after every thread has read the previous pass's value.
 */
export function kthLargest(
  mode: i32,
  scores: GlobalIn<f32>,
  best: Global<f32>,
  flags: Global<i32>,
  count: i32,
  kk: i32,
  hf: Local<i32>,
  hv: Local<f32>,
  hist: Shared<i32>,
  res: Shared<i32>,
  key: Local<u32>,
): void {
  const tid = threadIdx.x;
  const chunk = HELD * blockDim.x;
  let hi: u32 = 0;
  let lo: u32 = 0;
  let need = kk;
  let done = false;
  for (let pass = 0; pass < 8; pass++) {
    if (done) break;
    const low = pass >= 4;
    const q = pass & 3;
    const shift = 24 - 8 * q;
    // The bits of the half being refined that earlier passes fixed.
    const fixed: u32 = q === 0 ? 0 : u32(0xffffffff) << (32 - 8 * q);
    for (let base = 0; base < count; base += chunk) {
      if (count > chunk) holdChunk(mode, scores, best, flags, base, count, hf, hv);
      for (let j = 0; j < HELD; j++) {
        const f = hf[j];
        if (isMember(mode, f)) {
          const h = keyHi(mode, hv[j]);
          const l = keyLo(mode, f, base + tid + j * blockDim.x);
          if (low ? h === hi && (l & fixed) === lo : (h & fixed) === hi) atomicAdd(hist, i32(((low ? l : h) >> shift) & 255), 1);
        }
      }
    }
    syncthreads();
    if (tid < 32) {
      // Lane t holds digits 255 - 8t down to 248 - 8t; counts above them by a warp scan.
      let sum = 0;
      for (let j = 0; j < 8; j++) sum += hist[255 - 8 * tid - j];
      let incl = sum;
      for (let o = 1; o < 32; o <<= 1) {
        const x = shflUp(incl, o);
        if (tid >= o) incl += x;
      }
      let above = incl - sum;
      if (above < need && need <= incl) {
        for (let j = 0; j < 8; j++) {
          const c = hist[255 - 8 * tid - j];
          if (above + c >= need) {
            res[0] = 255 - 8 * tid - j;
            res[1] = need - above;
            res[2] = c;
            break;
          }
          above += c;
        }
      }
      for (let j = 0; j < 8; j++) hist[255 - 8 * tid - j] = 0;
    }
    syncthreads();
    const digit = u32(res[0]) << shift;
    if (low) lo = lo | digit;
    else hi = hi | digit;
    need = res[1];
    // Every key left in the bucket is taken: the lower digits stay 0.
    done = res[2] === need;
  }
  key[0] = hi;
  key[1] = lo;
}

/** Page slots tables[slots + c + j] into hs[j] for pages c + j < to, -1 past `to`; all loads issued before any is used. */
function holdSlots(tables: Global<i32>, slots: i64, c: i32, to: i32, hs: Local<i32>): void {
  for (let j = 0; j < HELD; j++) hs[j] = c + j < to ? tables[slots + c + j] : -1;
}

/**
 * Exclusive prefix sum of v over the block (thread order) into out[0], the total into
 * out[1]. `scratch` holds one i32 per warp.
 */
export function blockScan(v: i32, scratch: Shared<i32>, out: Local<i32>): void {
  const lane = threadIdx.x & 31;
  const warp = threadIdx.x >> 5;
  let incl = v;
  for (let o = 1; o < 32; o <<= 1) {
    const x = shflUp(incl, o);
    if (lane >= o) incl += x;
  }
  if (lane === 31) scratch[warp] = incl;
  syncthreads();
  let before = 0;
  let total = 0;
  for (let w = 0; w < blockDim.x >> 5; w++) {
    const s = scratch[w];
    if (w < warp) before += s;
    total += s;
  }
  out[0] = before + incl - v;
  out[1] = total;
}

export function selectResident(
  _spec: object,
  scores: GlobalIn<f32>,
  rows: GlobalIn<i32>,
  tables: Global<i32>,
  flags: Global<i32>,
  best: Global<f32>,
  pageTable: Global<i32>,
  pageCounts: Global<i32>,
  lastPageLens: Global<i32>,
  copies: Global<i32>,
  plan: Global<i32>,
  batch: i32,
  groups: i32,
  k: i32,
  maxCandidates: i32,
  maxPages: i32,
  tablePages: i32,
): void {
  const r = blockIdx.x;
  if (r >= batch) return;
  const tid = threadIdx.x;
  const hist = shared<i32>(DIGITS);
  const res = shared<i32>(4);
  const counts = shared<i32>(4);
  const scratch = shared<i32>(32);
  const wantedList = shared<i32>(MAX_RECALLS);
  const victimList = shared<i32>(MAX_RECALLS);
  const wantedKey = shared<u32>(MAX_RECALLS);
  const victimKey = shared<u32>(MAX_RECALLS);
  const key = local<u32>(2);
  const wCut = local<u32>(2);
  const scan = local<i32>(2);
  // A chunk of candidates (holdChunk), then a run of page slots, in registers.
  const hf = local<i32>(HELD);
  const hv = local<f32>(HELD);
  const hs = local<i32>(HELD);
  const desc = r * ROW_FIELDS;
  // A row that claims more than the workspaces or its table row hold is the caller's
  // error (the reference refuses it); clamped here so that it stays in bounds.
  const numPages = Math.min(rows[desc + 1], tablePages);
  const first = rows[desc + 2];
  const count = Math.min(rows[desc + 3], maxCandidates);
  const slots = i64(rows[desc]) * 3 * tablePages;
  const hosts = slots + 2 * tablePages;
  // Each group chooses k, so up to k x groups recalls (core's list width 1 + 2kG).
  const maxRecalls = Math.min(k * groups, MAX_RECALLS);
  const width = 1 + 2 * k * groups;
  const out = r * width;
  for (let b = tid; b < DIGITS; b += blockDim.x) hist[b] = 0;
  if (tid < 4) {
    counts[tid] = 0;
    // Also keeps res one array in shared memory (not split into scalars), as the manifest counts it.
    res[tid] = 0;
  }
  let n = 0;
  if (count > 0 && k > 0) {
    const rowFlags = offset(flags, r * maxCandidates);
    const rowBest = offset(best, r * maxCandidates);
    const rowScores = r * groups * maxCandidates;
    const vals0 = offset(scores, rowScores);
    // Every loop over candidates gives candidate i to the same thread (holdChunk's
    // slots), so a thread reads back only its own flags until the barriers before the
    // lists. A row of one chunk is held in registers through each search and the
    // loops after it; a longer one is loaded again, chunk by chunk, by each loop.
    const chunk = HELD * blockDim.x;
    const oneChunk = count <= chunk;
    for (let base = 0; base < count; base += chunk) {
      for (let j = 0; j < HELD; j++) {
        const i = base + tid + j * blockDim.x;
        hf[j] = i < count && tables[slots + first + i] >= 0 ? RESIDENT : 0;
        hv[j] = -Infinity;
      }
      for (let g = 0; g < groups; g++) {
        for (let j = 0; j < HELD; j++) {
          const i = base + tid + j * blockDim.x;
          if (i < count) hv[j] = Math.max(hv[j], scores[rowScores + g * maxCandidates + i]);
        }
      }
      for (let j = 0; j < HELD; j++) {
        const i = base + tid + j * blockDim.x;
        if (i < count) {
          rowFlags[i] = hf[j];
          rowBest[i] = hv[j];
        }
      }
    }
    syncthreads();
    const kk = Math.min(k, count);
    for (let g = 0; g < groups; g++) {
      const vals = offset(scores, rowScores + g * maxCandidates);
      key[0] = 0;
      key[1] = 0;
      if (oneChunk) holdChunk(TOP, vals, rowBest, rowFlags, 0, count, hf, hv);
      if (kk < count) kthLargest(TOP, vals, rowBest, rowFlags, count, kk, hf, hv, hist, res, key);
      for (let base = 0; base < count; base += chunk) {
        if (!oneChunk) holdChunk(TOP, vals, rowBest, rowFlags, base, count, hf, hv);
        for (let j = 0; j < HELD; j++) {
          const f = hf[j];
          const i = base + tid + j * blockDim.x;
          if (isMember(TOP, f) && atLeast(keyHi(TOP, hv[j]), keyLo(TOP, f, i), key[0], key[1])) rowFlags[i] = f | CHOSEN;
        }
      }
    }
    // Wanted pages and victims both rank `best`: one hold serves the count, both
    // searches and the gathering.
    if (oneChunk) holdChunk(WANTED, vals0, rowBest, rowFlags, 0, count, hf, hv);
    let w = 0;
    let v = 0;
    for (let base = 0; base < count; base += chunk) {
      if (!oneChunk) holdChunk(WANTED, vals0, rowBest, rowFlags, base, count, hf, hv);
      for (let j = 0; j < HELD; j++) {
        if (isMember(WANTED, hf[j])) w++;
        if (isMember(VICTIM, hf[j])) v++;
      }
    }
    w = warpSumInt(w);
    v = warpSumInt(v);
    if ((tid & 31) === 0) {
      atomicAdd(counts, 0, w);
      atomicAdd(counts, 1, v);
    }
    syncthreads();
    const wanted = counts[0];
    const victims = counts[1];
    n = Math.min(Math.min(wanted, victims), maxRecalls);
    if (n > 0) {
      wCut[0] = 0;
      wCut[1] = 0;
      if (n < wanted) kthLargest(WANTED, vals0, rowBest, rowFlags, count, n, hf, hv, hist, res, wCut);
      key[0] = 0;
      key[1] = 0;
      if (n < victims) kthLargest(VICTIM, vals0, rowBest, rowFlags, count, n, hf, hv, hist, res, key);
      for (let base = 0; base < count; base += chunk) {
        if (!oneChunk) holdChunk(WANTED, vals0, rowBest, rowFlags, base, count, hf, hv);
        for (let j = 0; j < HELD; j++) {
          const f = hf[j];
          const i = base + tid + j * blockDim.x;
          if (isMember(WANTED, f)) {
            const h = keyHi(WANTED, hv[j]);
            if (atLeast(h, keyLo(WANTED, f, i), wCut[0], wCut[1])) {
              const at = atomicAdd(counts, 2, 1);
              wantedList[at] = i;
              wantedKey[at] = h;
            }
          }
          if (isMember(VICTIM, f)) {
            const h = keyHi(VICTIM, hv[j]);
            if (atLeast(h, keyLo(VICTIM, f, i), key[0], key[1])) {
              const at = atomicAdd(counts, 3, 1);
              victimList[at] = i;
              victimKey[at] = h;
            }
          }
        }
      }
      syncthreads();
      // Rank among the n gathered pages by counting (their keys are distinct).
      for (let j = tid; j < 2 * n; j += blockDim.x) {
        const isWanted = j < n;
        const e = isWanted ? wantedList[j] : victimList[j - n];
        const h = isWanted ? wantedKey[j] : victimKey[j - n];
        const l = u32(0x7fffffff - e);
        let rank = 0;
        for (let u = 0; u < n; u++) {
          const e2 = isWanted ? wantedList[u] : victimList[u];
          const h2 = isWanted ? wantedKey[u] : victimKey[u];
          if (e2 !== e && atLeast(h2, u32(0x7fffffff - e2), h, l)) rank++;
        }
        plan[out + 1 + 2 * rank + (isWanted ? 0 : 1)] = first + e;
      }
      syncthreads();
      for (let j = tid; j < n; j += blockDim.x) {
        const page = plan[out + 1 + 2 * j];
        const victim = plan[out + 2 + 2 * j];
        const slot = tables[slots + victim];
        tables[slots + page] = slot;
        tables[slots + victim] = -1;
        copies[out + 1 + 2 * j] = tables[hosts + page];
        copies[out + 2 + 2 * j] = slot;
      }
    }
  }
  for (let e = 1 + 2 * n + tid; e < width; e += blockDim.x) {
    copies[out + e] = 0;
    plan[out + e] = 0;
  }
  if (tid === 0) {
    copies[out] = n;
    plan[out] = n;
  }
  // The recalls' slot changes are visible to the whole block after this barrier.
  syncthreads();
  const per = (numPages + blockDim.x - 1) / blockDim.x;
  const from = Math.min(tid * per, numPages);
  const to = Math.min(from + per, numPages);
  // A range of up to HELD pages is read once, into registers, for both loops.
  let mine = 0;
  for (let c = from; c < to; c += HELD) {
    holdSlots(tables, slots, c, to, hs);
    for (let j = 0; j < HELD; j++) if (hs[j] >= 0) mine++;
  }
  blockScan(mine, scratch, scan);
  let at = scan[0];
  const listed = Math.min(scan[1], maxPages);
  const list = r * maxPages;
  for (let c = from; c < to; c += HELD) {
    if (to - from > HELD) holdSlots(tables, slots, c, to, hs);
    for (let j = 0; j < HELD; j++) {
      const slot = hs[j];
      if (slot >= 0) {
        // More resident pages than maxPages is the caller's error; the list stays in bounds.
        if (at < maxPages) pageTable[list + at] = slot;
        at++;
      }
    }
  }
  for (let e = listed + tid; e < maxPages; e += blockDim.x) pageTable[list + e] = -1;
  if (tid === 0) {
    pageCounts[r] = listed;
    lastPageLens[r] = rows[desc + 4];
  }
}

export const selectResidentKernel = defineKernel<Record<string, never>>({
  family: 'select_resident',
  summary: 'per batch row: top-k with recall planning, the plan applied to the page tables, copy list and attention list (Backend.selectResident)',
  source: import.meta.url,
  kernel: selectResident,
  name: () => 'select_resident',
  blockThreads: () => THREADS,
  grid: () => [arg('batch'), 1, 1],
  specs: () => [{}],
});
