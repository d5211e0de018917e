import type { PagePolicy } from './policy.js';
import { range } from './policy.js';

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
      const attend: number[][] = [];
      for (let g = 0; g < ctx.groups; g++) {
        const order = ctx.candidates
          .map((page, i) => ({ page, s: ctx.scores[g * n + i] }))
          .filter((c) => c.page !== last)
          .sort((a, b) => b.s - a.s || a.page - b.page);
        const pages = order.slice(0, ctx.budgetPages - 1).map((c) => c.page);
        pages.push(last);
        attend.push(pages.sort((a, b) => a - b));
      }
      return { attend, recalls: [], evictions: [] };
    },
    pageStartVictim: () => null,
  };
}
