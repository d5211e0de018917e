import type { Tensor } from '../backend.js';
import type { KvGeometry, ResolvedCacheOptions } from '../config.js';
import type { PageStepContext } from '../policies/policy.js';
import type { PageLayer } from './layer-state.js';
import type { PageStore } from './page-store.js';

/** What a policy's view of a layer is built from. */
export interface ContextHost {
  readonly store: PageStore;
  readonly options: ResolvedCacheOptions;
  readonly geometry: KvGeometry;
}

export function baseContext(o: ResolvedCacheOptions, numPages: number, resident: boolean[]) {
  return {
    numPages,
    resident,
    budgetPages: o.budgetPages,
    sinkPages: o.sinkPages,
    windowPages: o.windowPages,
    topK: o.topK,
    groups: 1,
  };
}

/** The policy's view of a layer; the query row is sliced (and pages scored) only when there are candidates. */
export function pageContext(host: ContextHost, layer: PageLayer, qRow: () => Tensor, candidates: number[]): PageStepContext {
  const { store, geometry: g } = host;
  const groups = candidates.length ? layer.policy.selectionGroups(g.numHeads, g.numKvHeads) : 1;
  let scores: ArrayLike<number> = [];
  if (candidates.length && layer.policy.digest) {
    const rows = store.i32(candidates.map((p) => layer.pages[p].digest));
    const est = store.backend.estimate(qRow(), store.digestStorage, rows, groups, layer.policy.digest);
    scores = store.backend.readSync(est);
  }
  return {
    ...baseContext(host.options, layer.pages.length, layer.pages.map((p) => p.slot >= 0)),
    groups,
    candidates,
    scores,
  };
}

/** When a new page starts in a budgeted layer, the page that gives up its slot (from lengths alone). */
export function pageStartVictim(o: ResolvedCacheOptions, layer: PageLayer): number | null {
  if (!layer.budgeted) return null;
  const resident = [...layer.pages.map((p) => p.slot >= 0), false];
  return layer.policy.pageStartVictim({ ...baseContext(o, layer.pages.length + 1, resident), candidates: [], scores: [] });
}
