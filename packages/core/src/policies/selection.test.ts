import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topIndices } from './policy.js';
import { planPageSelection } from './selection.js';

/** The specification: sort every candidate per group, keep the first k; then plan recalls as the policy describes. */
function planBySorting(scores: ArrayLike<number>, groups: number, resident: ArrayLike<number>, k: number, freeSlots: number) {
  const count = resident.length;
  const best = new Float64Array(count).fill(-Infinity);
  const top: number[][] = [];
  const chosen = new Uint8Array(count);
  for (let g = 0; g < groups; g++) {
    const order = [...Array(count).keys()].sort((a, b) => scores[g * count + b] - scores[g * count + a] || resident[b] - resident[a] || a - b);
    const picked = order.slice(0, Math.min(k, count));
    top.push(picked);
    for (const c of picked) chosen[c] = 1;
    for (let i = 0; i < count; i++) best[i] = Math.max(best[i], scores[g * count + i]);
  }
  const wanted = [...Array(count).keys()].filter((c) => chosen[c] && !resident[c]).sort((a, b) => best[b] - best[a] || a - b);
  const victims = [...Array(count).keys()].filter((c) => !chosen[c] && resident[c]).sort((a, b) => best[a] - best[b] || a - b);
  const recalls: { candidate: number; victim: number }[] = [];
  let free = freeSlots;
  let v = 0;
  for (const candidate of wanted) {
    if (free > 0) {
      recalls.push({ candidate, victim: -1 });
      free--;
    } else if (v < victims.length) recalls.push({ candidate, victim: victims[v++] });
  }
  return { top, recalls };
}

describe('planPageSelection', () => {
  it('plans what sorting every candidate plans, ties included', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 }).chain((count) =>
          fc.record({
            count: fc.constant(count),
            groups: fc.integer({ min: 1, max: 4 }),
            k: fc.integer({ min: 0, max: 70 }),
            free: fc.integer({ min: 0, max: 5 }),
            // Few distinct values, so that ties between scores are common.
            scores: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: count * 4, maxLength: count * 4 }),
            resident: fc.array(fc.integer({ min: 0, max: 1 }), { minLength: count, maxLength: count }),
          }),
        ),
        ({ count, groups, k, free, scores, resident }) => {
          const s = Float32Array.from(scores.slice(0, count * groups));
          const r = Int32Array.from(resident);
          expect(planPageSelection(s, groups, r, k, free)).toEqual(planBySorting(s, groups, r, k, free));
        },
      ),
      { numRuns: 2000, seed: 11 },
    );
  });

  it('topIndices keeps what sorting keeps, among a subset or all, ties to the lower index', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -2, max: 2 }), { maxLength: 80 }),
        fc.integer({ min: -1, max: 90 }),
        fc.option(fc.uniqueArray(fc.nat(79)), { nil: undefined }),
        (raw, n, among) => {
          const values = Float32Array.from(raw);
          const pool = (among ?? [...values.keys()]).filter((i) => i < values.length);
          const spec = [...pool]
            .sort((a, b) => values[b] - values[a] || a - b)
            .slice(0, Math.max(0, n))
            .sort((a, b) => a - b);
          expect(topIndices(values, n, among ? pool : undefined)).toEqual(spec);
        },
      ),
      { numRuns: 2000, seed: 12 },
    );
  });
});
