/**
 * ArkVale's top-k with recall planning, as a pure function over host arrays. The
 * ArkVale policy uses it directly; `Backend.selectPages` is the same computation on
 * backend tensors (a GPU runs it as a kernel so the plan never leaves the device).
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
export function planPageSelection(
  scores: ArrayLike<number>,
  groups: number,
  resident: ArrayLike<number>,
  k: number,
  freeSlots: number,
): SelectionPlan {
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

/** The plan as the i32 layout `Backend.selectPages` returns: [n, (candidate, victim) x n]. */
export function encodeSelectionPlan(plan: SelectionPlan): Int32Array {
  const out = new Int32Array(1 + 2 * plan.recalls.length);
  out[0] = plan.recalls.length;
  plan.recalls.forEach((r, i) => {
    out[1 + 2 * i] = r.candidate;
    out[2 + 2 * i] = r.victim;
  });
  return out;
}

export function decodeSelectionPlan(data: Int32Array): { candidate: number; victim: number }[] {
  const n = data[0];
  return Array.from({ length: n }, (_, i) => ({ candidate: data[1 + 2 * i], victim: data[2 + 2 * i] }));
}
