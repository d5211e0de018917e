import type { DigestVariant, SelectionScope } from '../config.js';
import type { PageStepContext, PagePolicy } from './policy.js';
import { range, topIndices } from './policy.js';
import { planPageSelection } from './selection.js';

/**
 * ArkVale: a budget of resident pages (sinks, window, and the pages the last query
 * scored highest); every full page is backed up to the host, and a page whose
 * estimated importance returns is recalled in place of the lowest-scored resident
 * page outside the top k.
 */
export function arkvalePolicy(digest: DigestVariant = 'cuboid-mean', selection: SelectionScope = 'layer'): PagePolicy {
  const residentPages = (ctx: PageStepContext) => range(0, ctx.numPages).filter((p) => ctx.resident[p]);
  return {
    kind: 'page',
    name: 'arkvale',
    recallable: true,
    budgeted: true,
    digest,
    selectionGroups: (_numHeads, numKvHeads) => (selection === 'layer' ? 1 : numKvHeads),
    attentionGroups: () => 1,
    prefillResident: (ctx) => {
      const fixed = [...range(0, ctx.sinkPages), ...range(ctx.numPages - ctx.windowPages, ctx.numPages)];
      const room = ctx.budgetPages - fixed.length;
      // Rank middle pages by their best score over the selection groups.
      const n = ctx.candidates.length;
      const best = ctx.candidates.map((_, i) => Math.max(...range(0, ctx.groups).map((g) => ctx.scores[g * n + i])));
      const middle = topIndices(best, room).map((i) => ctx.candidates[i]);
      return [...fixed, ...middle].sort((a, b) => a - b);
    },
    decide: (ctx) => {
      const noChange = { recalls: [], evictions: [] };
      if (ctx.numPages <= ctx.budgetPages || ctx.candidates.length === 0 || ctx.topK === 0) {
        return { attend: [residentPages(ctx)], ...noChange };
      }
      const resident = ctx.candidates.map((p) => (ctx.resident[p] ? 1 : 0));
      const used = ctx.resident.filter(Boolean).length;
      const plan = planPageSelection(ctx.scores, ctx.groups, resident, ctx.topK, Math.max(0, ctx.budgetPages - used));
      const recalls = plan.recalls.map((r) => ({
        page: ctx.candidates[r.candidate],
        victim: r.victim < 0 ? -1 : ctx.candidates[r.victim],
      }));
      const evictions = recalls.filter((r) => r.victim >= 0).map((r) => r.victim);
      const attending = new Set(residentPages(ctx));
      for (const r of recalls) {
        attending.add(r.page);
        attending.delete(r.victim);
      }
      return { attend: [[...attending].sort((a, b) => a - b)], recalls, evictions };
    },
    pageStartVictim: (ctx) => {
      // The page that just left the window gives its slot to the new page; it stays
      // recallable, and the same step's selection brings it back if it still matters.
      const leaving = ctx.numPages - ctx.windowPages - 1;
      let used = 0;
      for (const r of ctx.resident) if (r) used++;
      if (used < ctx.budgetPages || leaving < ctx.sinkPages || !ctx.resident[leaving]) return null;
      return leaving;
    },
  };
}
