import type { Backend, Tensor } from '../backend.js';
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

/** A layer's page estimates, launched but not read: `scores` is [groups * candidates] on the backend, or null when nothing is scored. */
export interface PendingScores {
  readonly candidates: number[];
  readonly groups: number;
  readonly scores: Tensor | null;
}

/** Launches the estimate of the candidate pages; the query row is sliced only when there are candidates. */
export function launchEstimate(host: ContextHost, layer: PageLayer, qRow: () => Tensor, candidates: number[]): PendingScores {
  const { store, geometry: g } = host;
  const groups = candidates.length ? layer.policy.selectionGroups(g.numHeads, g.numKvHeads) : 1;
  if (!candidates.length || !layer.policy.digest) return { candidates, groups, scores: null };
  const rows = store.i32(candidates.map((p) => layer.pages[p].digest));
  return { candidates, groups, scores: store.backend.estimate(qRow(), store.digestStorage, rows, groups, layer.policy.digest) };
}

/**
 * Reads the estimates of several layers with one synchronisation: they are gathered
 * into one tensor on the backend first. Entries without scores read as empty.
 */
export function readEstimates(b: Backend, pending: readonly (PendingScores | null)[]): ArrayLike<number>[] {
  const launched = pending.filter((p): p is PendingScores & { scores: Tensor } => p?.scores != null);
  const sizes = launched.map((p) => p.groups * p.candidates.length);
  const all =
    launched.length === 1
      ? b.readSync(launched[0].scores)
      : launched.length > 1
        ? b.readSync(b.concatRows(launched.map((p, i) => b.reshape(p.scores, [sizes[i], 1]))))
        : new Float32Array(0);
  let offset = 0;
  return pending.map((p) => {
    if (p?.scores == null) return [];
    const n = p.groups * p.candidates.length;
    offset += n;
    return all.subarray(offset - n, offset);
  });
}

/** The policy's view of a layer, given its read estimates. */
export function contextWith(host: ContextHost, layer: PageLayer, pending: PendingScores, scores: ArrayLike<number>): PageStepContext {
  return {
    ...baseContext(
      host.options,
      layer.pages.length,
      layer.pages.map((p) => p.slot >= 0),
    ),
    groups: pending.groups,
    candidates: pending.candidates,
    scores,
  };
}

/** The policy's view of a layer, its estimates launched and read at once. */
export function pageContext(host: ContextHost, layer: PageLayer, qRow: () => Tensor, candidates: number[]): PageStepContext {
  const pending = launchEstimate(host, layer, qRow, candidates);
  return contextWith(host, layer, pending, readEstimates(host.store.backend, [pending])[0]);
}

/** When a new page starts in a budgeted layer, the page that gives up its slot (from lengths alone). */
export function pageStartVictim(o: ResolvedCacheOptions, layer: PageLayer): number | null {
  if (!layer.budgeted) return null;
  // One loop, no intermediate arrays: every (sequence, layer) asks this when a page starts.
  const n = layer.pages.length;
  const resident = new Array<boolean>(n + 1);
  for (let p = 0; p < n; p++) resident[p] = layer.pages[p].slot >= 0;
  resident[n] = false;
  return layer.policy.pageStartVictim({ ...baseContext(o, layer.pages.length + 1, resident), candidates: [], scores: [] });
}
