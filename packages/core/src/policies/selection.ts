/**
 * ArkVale's top-k with recall planning, as a pure function over host arrays. The
 * ArkVale policy uses it directly; `Backend.selectResident` makes the same choice for
 * a whole decode batch on backend tensors (with no free slots: every recall takes a
 * victim's slot), so on a GPU the plan never leaves the device.
 */
import { firstInOrder } from './policy.js';

export interface SelectionPlan {
  /** Per group, the chosen candidates, best first. */
  readonly top: number[][];
  /** Candidates to bring back, best first, each into a free slot (victim -1) or the victim's slot. */
  readonly recalls: { candidate: number; victim: number }[];
}

/**
 * @param scores [groups * count] estimates, group-major.
 * @param resident per candidate, nonzero when it is on the device.
 * @param k candidates chosen per group.
 * @param freeSlots budget slots the layer may fill before it must evict.
 */
export function planPageSelection(scores: ArrayLike<number>, groups: number, resident: ArrayLike<number>, k: number, freeSlots: number): SelectionPlan {
  const count = resident.length;
  const best = new Float64Array(count).fill(-Infinity);
  const top: number[][] = [];
  const chosen = new Uint8Array(count);
  const want = Math.min(k, count);
  for (let g = 0; g < groups; g++) {
    const base = g * count;
    // Ties go to the resident page (no copy), then to the older page: deterministic.
    const before = (a: number, b: number) => scores[base + b] - scores[base + a] || resident[b] - resident[a] || a - b;
    const picked = firstInOrder(count, want, before);
    top.push(picked);
    for (const c of picked) chosen[c] = 1;
    for (let i = 0; i < count; i++) best[i] = Math.max(best[i], scores[base + i]);
  }
  const wanted: number[] = [];
  const victims: number[] = [];
  for (let c = 0; c < count; c++) {
    if (chosen[c] && !resident[c]) wanted.push(c);
    else if (!chosen[c] && resident[c]) victims.push(c);
  }
  wanted.sort((a, b) => best[b] - best[a] || a - b);
  victims.sort((a, b) => best[a] - best[b] || a - b);
  const recalls: { candidate: number; victim: number }[] = [];
  let free = freeSlots;
  let v = 0;
  for (const candidate of wanted) {
    if (free > 0) {
      recalls.push({ candidate, victim: -1 });
      free--;
    } else if (v < victims.length) {
      recalls.push({ candidate, victim: victims[v++] });
    }
  }
  return { top, recalls };
}
