import type { PagePolicy } from './policy.js';
import { firstInOrder, range } from './policy.js';

/**
 * Quest: all KV stays on the device; each query head attends only the pages with the
 * highest exact min/max bound (cuboid-max digest), plus the last page, up to the budget.
 */
export function questPolicy(): PagePolicy {
  return {
    kind: 'page',
    name: 'quest',
    recallable: false,
    budgeted: false,
    digest: 'cuboid-max',
    selectionGroups: (numHeads) => numHeads,
    attentionGroups: (numHeads) => numHeads,
    prefillResident: (ctx) => range(0, ctx.numPages),
    decide: (ctx) => {
      const last = ctx.numPages - 1;
      if (ctx.numPages <= ctx.budgetPages || ctx.candidates.length === 0) {
        return { attend: Array.from({ length: ctx.groups }, () => range(0, ctx.numPages)), recalls: [], evictions: [] };
      }
      const n = ctx.candidates.length;
      const { candidates: pages, scores } = ctx;
      // Positions in `candidates` of the pages that may be chosen (the last page always is).
      const pool = range(0, n).filter((i) => pages[i] !== last);
      const attend: number[][] = [];
      for (let g = 0; g < ctx.groups; g++) {
        const best = (a: number, b: number) => scores[g * n + pool[b]] - scores[g * n + pool[a]] || pages[pool[a]] - pages[pool[b]];
        const chosen = firstInOrder(pool.length, ctx.budgetPages - 1, best).map((i) => pages[pool[i]]);
        chosen.push(last);
        attend.push(chosen.sort((a, b) => a - b));
      }
      return { attend, recalls: [], evictions: [] };
    },
    pageStartVictim: () => null,
  };
}
