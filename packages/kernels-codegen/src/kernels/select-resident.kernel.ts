/**
 * ArkVale's selection for a whole decode batch without a host round trip
 * (Backend.selectResident; semantics of core's reference selectResident), one block
 * per batch row, after estimate_rows has written the row's candidate scores and
 * select_top each group's choices:
 *
 * 1. Residency (page table slot >= 0), whether any group chose the candidate (select_top's
 *    flags [B, groups, maxCandidates]: each group's top k by (score desc, resident first,
 *    index asc), found by the radix select below) and the best score over groups of
 *    every candidate, into the caller's workspaces `flags` and `best` [B, maxCandidates].
 * 2. Wanted = chosen and not resident, victims = resident and not chosen; n = the
 *    fewer of the two (no free slots: every recall takes a victim's slot). Only the n
 *    best wanted (best desc, index asc) and the n first victims (best asc, index asc)
 *    matter: one radix select of two slots finds both cuts (a slot is skipped when all
 *    are taken), the pages above them are gathered in shared memory and ranked by
 *    counting among n.
 * 3. Recall j moves wanted page j into victim j's slot (the victim's becomes -1) and is
 *    listed in `plan` [n, (page, victim page) x n] and `copies` [n, (host slot, slot) x n],
 *    rows of 1 + 2 * k * groups (each group chooses k); the rest of both rows is 0.
 * 4. The attention list: the slot of every page 0..numPages-1 that is resident, in
 *    page order (an exclusive scan over contiguous page ranges), padded with -1.
 *
 * Batch rows must name distinct table rows (each block updates its own). On an H200 a
 * batch of 8 rows of 960 candidates (k 29, 2 recalls a row) took 10.5 us from launch
 * to end, of which an empty launch takes 3.7; 256 or 1024 threads per block were slower.
 * On an H100 at 4 rows of 4096 candidates x 8 groups (the 8B step at 128k), with the
 * groups' searches still inside this kernel, it took 17.8 us with them one after another,
 * 20.3 us with them together and 23.4 us with their count warp-aggregated (a pass over
 * 8 groups' scores no longer fits in L1); select_top now runs them a block each
 * (docs/BENCHMARKS.md, tenth and eleventh sessions).
 */
import {
  atomicAdd,
  ballot,
  blockDim,
  blockIdx,
  floatBits,
  i32,
  i64,
  local,
  offset,
  popc,
  shared,
  shflIdx,
  shflUp,
  shflXor,
  syncthreads,
  syncwarp,
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
export const ROW_FIELDS = 5;
/** Buckets of a radix select pass (8-bit digits): the size of kthLargest's shared histogram. */
export const DIGITS = 256;
// Bits of `flags`.
export const RESIDENT = 1;
export const CHOSEN = 2;
// What a radix select ranks: a group's top k, the wanted pages, the victims.
export const TOP = 0;
const WANTED = 1;
const VICTIM = 2;
/** kthLargestEach's wanted (slot 0) and victim (slot 1) cuts in one search. */
const PAIR = 3;

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

/** A slot's mode: `mode` itself, or for PAIR slot 0 the wanted pages and slot 1 the victims. */
function slotMode(mode: i32, s: i32): i32 {
  if (mode === PAIR) return s === 0 ? WANTED : VICTIM;
  return mode;
}

/**
 * The kk-th largest key of each of `slots` radix selections at once (slots at most the
 * block's warps), into keys[2s] (high half) and keys[2s + 1] (low). Slot s ranks its
 * members for slotMode(mode, s): for TOP, scores[s * stride + i] (a group's top k);
 * otherwise `best` (wanted pages, victims). The caller sets keys to 0 and needs[s] to
 * the rank sought (0 < kk <= members), or to 0 where there is nothing to search (the
 * key stays 0, which every member reaches), then a block barrier. `best` and `flags`
 * are written by select_resident, so they are never read through a read-only
 * (`const __restrict__`, non-coherent cache) pointer.
 *
 * Each pass counts the next 8-bit digit of every slot's members that share the prefix
 * found so far into the slot's histogram; then warp s finds the digit holding the slot's
 * kk-th key, appends it to the key, lowers the rank still needed (0 once every key
 * left in the digit's bucket is taken: the lower digits stay 0) and clears the
 * histogram, so it is zero between calls (the caller zeroes `hist` once). The slots
 * share their passes and barriers: select_resident's wanted and victim cuts run as two
 * slots. (Eight groups' top k as eight slots of one block, the 8B step's, were slower
 * than one after another, 20.3 us against 17.8 on an H100: a pass then reads every
 * group's scores, more than L1 holds; select_top gives each group a block.)
 */
export function kthLargestEach(
  mode: i32,
  slots: i32,
  scores: GlobalIn<f32>,
  stride: i32,
  best: Global<f32>,
  flags: Global<i32>,
  count: i32,
  hist: Shared<i32>,
  keys: Shared<u32>,
  needs: Shared<i32>,
): void {
  const tid = threadIdx.x;
  const lane = tid & 31;
  const warp = tid >> 5;
  for (let pass = 0; pass < 8; pass++) {
    // needs were last written before a barrier, so every thread breaks at the same pass.
    let active = false;
    for (let s = 0; s < slots; s++) if (needs[s] > 0) active = true;
    if (!active) break;
    const low = pass >= 4;
    const q = pass & 3;
    const shift = 24 - 8 * q;
    // The bits of the half being refined that earlier passes fixed.
    const fixed: u32 = q === 0 ? 0 : u32(0xffffffff) << (32 - 8 * q);
    for (let s = 0; s < slots; s++) {
      if (needs[s] > 0) {
        const m = slotMode(mode, s);
        const hi = keys[2 * s];
        const lo = keys[2 * s + 1];
        // Every lane runs every round (the votes below take the whole warp).
        for (let i0 = 0; i0 < count; i0 += blockDim.x) {
          const i = i0 + tid;
          let digit = -1;
          if (i < count) {
            const f = flags[i];
            if (isMember(m, f)) {
              const h = keyHi(m, m === TOP ? scores[s * stride + i] : best[i]);
              const l = keyLo(m, f, i);
              if (low ? h === hi && (l & fixed) === lo : (h & fixed) === hi) digit = i32(((low ? l : h) >> shift) & 255);
            }
          }
          // The first counting lane adds for every lane with its digit: the top digits of
          // scores are nearly all one, and one shared atomic a key on that bucket took
          // most of select_resident's 20 us at 4 x 4096 candidates x 8 groups (H100).
          const counting = ballot(digit >= 0);
          if (counting !== 0) {
            const first = popc((counting & (~counting + 1)) - 1);
            const lead = shflIdx(digit, first);
            const same = ballot(digit === lead);
            if (lane === first) atomicAdd(hist, s * DIGITS + lead, popc(same));
            else if (digit >= 0 && digit !== lead) atomicAdd(hist, s * DIGITS + digit, 1);
          }
        }
      }
    }
    syncthreads();
    if (warp < slots) {
      const base = warp * DIGITS;
      const need = needs[warp];
      // Every lane has read needs before one of them writes it.
      syncwarp();
      if (need > 0) {
        // Lane t holds digits 255 - 8t down to 248 - 8t; counts above them by a warp scan.
        let sum = 0;
        for (let j = 0; j < 8; j++) sum += hist[base + 255 - 8 * lane - j];
        let incl = sum;
        for (let o = 1; o < 32; o <<= 1) {
          const x = shflUp(incl, o);
          if (lane >= o) incl += x;
        }
        let above = incl - sum;
        if (above < need && need <= incl) {
          for (let j = 0; j < 8; j++) {
            const c = hist[base + 255 - 8 * lane - j];
            if (above + c >= need) {
              const digit = u32(255 - 8 * lane - j) << shift;
              if (low) keys[2 * warp + 1] = keys[2 * warp + 1] | digit;
              else keys[2 * warp] = keys[2 * warp] | digit;
              needs[warp] = c === need - above ? 0 : need - above;
              break;
            }
            above += c;
          }
        }
      }
      for (let j = 0; j < 8; j++) hist[base + 255 - 8 * lane - j] = 0;
    }
    syncthreads();
  }
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
  chosen: GlobalIn<i32>,
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
  // The wanted and victim cuts' search: two slots.
  const hist = shared<i32>(DIGITS * 2);
  const keys = shared<u32>(4);
  const needs = shared<i32>(2);
  const counts = shared<i32>(4);
  const scratch = shared<i32>(32);
  const wantedList = shared<i32>(MAX_RECALLS);
  const victimList = shared<i32>(MAX_RECALLS);
  const wantedKey = shared<u32>(MAX_RECALLS);
  const victimKey = shared<u32>(MAX_RECALLS);
  const scan = local<i32>(2);
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
  for (let b = tid; b < DIGITS * 2; b += blockDim.x) hist[b] = 0;
  if (tid < 4) counts[tid] = 0;
  let n = 0;
  if (count > 0 && k > 0) {
    const rowFlags = offset(flags, r * maxCandidates);
    const rowBest = offset(best, r * maxCandidates);
    const rowScores = r * groups * maxCandidates;
    // Residency, each group's choice (select_top) and the best score over groups. Every
    // loop over candidates gives candidate i to the same thread, so a thread reads back
    // only its own flags until the barriers before the lists.
    for (let i = tid; i < count; i += blockDim.x) {
      let b: f32 = -Infinity;
      let f = tables[slots + first + i] >= 0 ? RESIDENT : 0;
      for (let g = 0; g < groups; g++) {
        b = Math.max(b, scores[rowScores + g * maxCandidates + i]);
        f = f | (chosen[rowScores + g * maxCandidates + i] & CHOSEN);
      }
      rowFlags[i] = f;
      rowBest[i] = b;
    }
    // counts' and hist's zeros are visible to every warp before its atomics.
    syncthreads();
    let w = 0;
    let v = 0;
    for (let i = tid; i < count; i += blockDim.x) {
      const f = rowFlags[i];
      if (isMember(WANTED, f)) w++;
      if (isMember(VICTIM, f)) v++;
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
      // The n best wanted pages' cut (keys 0, 1) and the n first victims' (keys 2, 3) in one search.
      if (tid === 0) {
        for (let e = 0; e < 4; e++) keys[e] = 0;
        needs[0] = n < wanted ? n : 0;
        needs[1] = n < victims ? n : 0;
      }
      syncthreads();
      kthLargestEach(PAIR, 2, scores, 0, rowBest, rowFlags, count, hist, keys, needs);
      for (let i = tid; i < count; i += blockDim.x) {
        const f = rowFlags[i];
        if (isMember(WANTED, f)) {
          const h = keyHi(WANTED, rowBest[i]);
          if (atLeast(h, keyLo(WANTED, f, i), keys[0], keys[1])) {
            const at = atomicAdd(counts, 2, 1);
            wantedList[at] = i;
            wantedKey[at] = h;
          }
        }
        if (isMember(VICTIM, f)) {
          const h = keyHi(VICTIM, rowBest[i]);
          if (atLeast(h, keyLo(VICTIM, f, i), keys[2], keys[3])) {
            const at = atomicAdd(counts, 3, 1);
            victimList[at] = i;
            victimKey[at] = h;
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
  let mine = 0;
  for (let p = from; p < to; p++) if (tables[slots + p] >= 0) mine++;
  blockScan(mine, scratch, scan);
  let at = scan[0];
  const listed = Math.min(scan[1], maxPages);
  const list = r * maxPages;
  for (let p = from; p < to; p++) {
    const slot = tables[slots + p];
    if (slot >= 0) {
      // More resident pages than maxPages is the caller's error; the list stays in bounds.
      if (at < maxPages) pageTable[list + at] = slot;
      at++;
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
