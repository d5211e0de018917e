/**
 * ArkVale's top-k page selection with recall planning on the device
 * (Backend.selectPages; semantics of core's planPageSelection), in one block:
 *
 * 1. Per group, the top k candidates by (score desc, resident first, index asc): every
 *    candidate gets a distinct 64-bit key in that order and a bitwise search finds the
 *    k-th largest key (64 block-wide counts), so no sort is needed.
 * 2. Wanted = chosen and not resident, by (best group score desc, index asc); victims
 *    = resident and not chosen, by (best asc, index asc). Ranks come from counting.
 * 3. The j-th wanted page is recalled into a free slot while `freeSlots` last, then
 *    into the slot of the j-th victim; plan = [n, (candidate, victim or -1) x n].
 *
 * `chosen`, `best` and `victimByRank` are caller-provided workspaces of `count` entries.
 */
import { blockDim, floatBits, shared, syncthreads, threadIdx, u32, type Global, type GlobalIn, type bool, type f32, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { blockCount } from './common.js';

const THREADS = 512;

/** Scores in an unsigned order: larger float, larger key (-0 counts as +0). */
export function scoreKey(s: f32): u32 {
  const b = floatBits(s + 0.0);
  return (b & 0x80000000) !== 0 ? ~b : b | 0x80000000;
}

/** Low half of a candidate's key: resident first, then lower index first. */
export function tieKey(resident: i32, i: i32): u32 {
  return (u32(resident !== 0 ? 1 : 0) << 31) | u32(0x7fffffff - i);
}

export function atLeast(hi: u32, lo: u32, thHi: u32, thLo: u32): bool {
  return hi > thHi || (hi === thHi && lo >= thLo);
}

export function selectPages(
  _spec: object,
  scores: GlobalIn<f32>,
  resident: GlobalIn<i32>,
  chosen: Global<i32>,
  best: Global<f32>,
  victimByRank: Global<i32>,
  plan: Global<i32>,
  count: i32,
  groups: i32,
  k: i32,
  freeSlots: i32,
): void {
  const tid = threadIdx.x;
  const scratch = shared<i32>(32);
  for (let i = tid; i < count; i += blockDim.x) {
    chosen[i] = 0;
    best[i] = -Infinity;
  }
  const kk = Math.min(k, count);
  for (let g = 0; g < groups; g++) {
    // The kk-th largest key: set bits from the top while at least kk keys stay >= it.
    let thHi: u32 = 0;
    let thLo: u32 = 0;
    if (kk > 0 && kk < count) {
      for (let bit = 63; bit >= 0; bit--) {
        const tryHi = bit >= 32 ? thHi | (u32(1) << (bit - 32)) : thHi;
        const tryLo = bit < 32 ? thLo | (u32(1) << bit) : thLo;
        let n = 0;
        for (let i = tid; i < count; i += blockDim.x) {
          if (atLeast(scoreKey(scores[g * count + i]), tieKey(resident[i], i), tryHi, tryLo)) n++;
        }
        if (blockCount(n, scratch) >= kk) {
          thHi = tryHi;
          thLo = tryLo;
        }
      }
    }
    for (let i = tid; i < count; i += blockDim.x) {
      const s = scores[g * count + i];
      const picked = kk >= count || (kk > 0 && atLeast(scoreKey(s), tieKey(resident[i], i), thHi, thLo));
      if (picked) chosen[i] = 1;
      best[i] = Math.max(best[i], s);
    }
  }
  syncthreads();
  // Count wanted pages and victims, and place every victim at its rank.
  let wantedHere = 0;
  let victimsHere = 0;
  for (let i = tid; i < count; i += blockDim.x) {
    const res = resident[i] !== 0;
    if (chosen[i] !== 0 && !res) wantedHere++;
    if (chosen[i] === 0 && res) {
      victimsHere++;
      let rank = 0;
      for (let u = 0; u < count; u++) {
        if (chosen[u] === 0 && resident[u] !== 0 && (best[u] < best[i] || (best[u] === best[i] && u < i))) rank++;
      }
      victimByRank[rank] = i;
    }
  }
  const wanted = blockCount(wantedHere, scratch);
  const victims = blockCount(victimsHere, scratch);
  const free = Math.max(freeSlots, 0);
  const n = Math.min(wanted, free + victims);
  for (let i = tid; i < count; i += blockDim.x) {
    if (chosen[i] !== 0 && resident[i] === 0) {
      let rank = 0;
      for (let u = 0; u < count; u++) {
        if (chosen[u] !== 0 && resident[u] === 0 && (best[u] > best[i] || (best[u] === best[i] && u < i))) rank++;
      }
      if (rank < n) {
        plan[1 + 2 * rank] = i;
        plan[2 + 2 * rank] = rank < free ? -1 : victimByRank[rank - free];
      }
    }
  }
  if (tid === 0) plan[0] = n;
}

export const selectPagesKernel = defineKernel<Record<string, never>>({
  family: 'select_pages',
  summary: 'top-k pages per group with recall planning (planPageSelection) into plan [n, (candidate, victim) x n] (Backend.selectPages)',
  source: import.meta.url,
  kernel: selectPages,
  name: () => 'select_pages',
  blockThreads: () => THREADS,
  grid: () => [1, 1, 1],
  specs: () => [{}],
});

/**
 * Applies a plan on the device: candidate j of the plan moves into its victim's slot
 * (or the next free slot), the victim's slot is given up (-1), and the copy list
 * [n, (hostSlot, deviceSlot) x n] for recall_pages is written. Keeps a decode step
 * free of device-to-host synchronisation.
 */
export function applySelection(
  _spec: object,
  plan: GlobalIn<i32>,
  hostSlots: GlobalIn<i32>,
  freeSlotList: GlobalIn<i32>,
  deviceSlots: Global<i32>,
  copyList: Global<i32>,
): void {
  const n = plan[0];
  for (let j = threadIdx.x; j < n; j += blockDim.x) {
    const candidate = plan[1 + 2 * j];
    const victim = plan[2 + 2 * j];
    const slot = victim >= 0 ? deviceSlots[victim] : freeSlotList[j];
    deviceSlots[candidate] = slot;
    if (victim >= 0) deviceSlots[victim] = -1;
    copyList[1 + 2 * j] = hostSlots[candidate];
    copyList[2 + 2 * j] = slot;
  }
  if (threadIdx.x === 0) copyList[0] = n;
}

export const applySelectionKernel = defineKernel<Record<string, never>>({
  family: 'apply_selection',
  summary: 'applies a select_pages plan to the candidates\' device slots and writes the recall copy list',
  source: import.meta.url,
  kernel: applySelection,
  name: () => 'apply_selection',
  blockThreads: () => 128,
  grid: () => [1, 1, 1],
  specs: () => [{}],
});

