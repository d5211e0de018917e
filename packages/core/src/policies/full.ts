import type { PagePolicy } from './policy.js';
import { range } from './policy.js';

/** Every page resident, every page attended: the accuracy reference. */
export function fullPolicy(): PagePolicy {
  return {
    kind: 'page',
    name: 'full',
    recallable: false,
    budgeted: false,
    digest: null,
    selectionGroups: () => 0,
    attentionGroups: () => 1,
    prefillResident: (ctx) => range(0, ctx.numPages),
    decide: (ctx) => ({ attend: [range(0, ctx.numPages)], recalls: [], evictions: [] }),
    pageStartVictim: () => null,
  };
}
