import type { Tensor } from '../backend.js';
import type { KvGeometry, ResolvedCacheOptions } from '../config.js';
import { range } from '../policies/policy.js';
import type { LayerState, PageLayer, PoolNeeds, SequenceState } from './layer-state.js';
import { emptyPage } from './layer-state.js';
import { contextWith, launchEstimate, pageStartVictim, readEstimates } from './page-context.js';
import type { PageStore } from './page-store.js';
import { afterTokenStep, placeTokenCell } from './token-cells.js';
import { decodeLayerOnDevice, selectsOnDevice } from './device-select.js';
import type { StepPlans } from './device-tables.js';
import { decodeTokenLayerOnDevice, tokensOnDevice, tokensToHost } from './token-device.js';
import type { StepVictims } from './token-tables.js';

/**
 * One decode step of a batch, as the page manager carries it out: the pool pages it
 * may take, where each new token goes (planned from lengths alone), and each layer's
 * append, sealing, selection, recalls and paged attention.
 */

/** What a decode step needs of the cache. */
export interface StepHost {
  readonly store: PageStore;
  readonly options: ResolvedCacheOptions;
  readonly geometry: KvGeometry;
  /** Token cells of a token-level layer. */
  readonly tokenCells: number;
}

/** Where one sequence's new token goes in one layer. */
export interface TokenTarget {
  readonly slot: number;
  readonly offset: number;
}

/** Where a layer deciding on the device writes its plans (ArkVale) or victims (H2O, TOVA): the step's gatherers and the layer's index. */
export interface DecisionRows {
  readonly plans: StepPlans;
  readonly victims: StepVictims;
  readonly layer: number;
}

/** A layer's targets on the backend: i32 [B] slots and offsets, as appendKv takes them. */
export interface WrittenTargets {
  readonly slots: Tensor;
  readonly offsets: Tensor;
}

/** Per layer where a page starts this step, the page that gives up its slot (null: a fresh slot), as `pageStartVictim` finds it. */
export type PageStartVictims = Map<PageLayer, number | null>;

/**
 * Pool pages a decode step of these (prefilled, resident) sequences may take: new pages,
 * backups, digests and the worst case of its recalls. `victims`, when given, receives
 * the victim of every layer where a page starts, for `placeToken`.
 */
export function stepNeeds(host: StepHost, seqs: readonly SequenceState[], victims?: PageStartVictims): PoolNeeds {
  const ps = host.geometry.pageSize;
  let device = 0;
  let hostPages = 0;
  let digests = 0;
  for (const s of seqs) {
    const startsPage = s.length % ps === 0;
    const fills = (s.length + 1) % ps === 0;
    for (const layer of s.layers) {
      if (layer.kind === 'token') {
        if (layer.freeCell < 0 && layer.filled % ps === 0) device++;
        continue;
      }
      if (startsPage) {
        const victim = pageStartVictim(host.options, layer);
        victims?.set(layer, victim);
        if (host.store.needsFreshSlot(victim === null ? null : layer.pages[victim])) device++;
      }
      device += recallReserve(host, layer, s.length);
      if (fills && layer.digests) digests++;
      if (fills && layer.backups) hostPages++;
    }
  }
  return { device, host: hostPages, digests };
}

/**
 * Fresh device slots the layer's selection may take this step: recalls go into the
 * victim's slot unless a fork still shares it, or into a free budget slot. Reserved
 * up front so that a step never runs out of pages halfway.
 */
function recallReserve(host: StepHost, layer: PageLayer, length: number): number {
  const o = host.options;
  // Selection runs only once the sequence has more pages than the budget. A row in
  // sync with the device tables holds the budget with no shared slot: every recall
  // takes a victim's slot (see device-select.ts).
  if (layer.rowSynced || !layer.budgeted || !layer.digests || Math.ceil((length + 1) / host.geometry.pageSize) <= o.budgetPages) return 0;
  let resident = 0;
  let shared = 0;
  for (const p of layer.pages) {
    if (p.slot < 0) continue;
    resident++;
    if (host.store.devicePool.refCount(p.slot) > 1) shared++;
  }
  const groups = layer.policy.selectionGroups(host.geometry.numHeads, host.geometry.numKvHeads);
  return Math.min(o.topK * groups, shared + Math.max(0, o.budgetPages - resident));
}

/** Places a sequence's next token in one layer: a new page when one starts (at budget, in the slot of the page leaving the window), or a free cell. */
export function placeToken(host: StepHost, s: SequenceState, layer: LayerState, victims?: PageStartVictims): TokenTarget {
  const ps = host.geometry.pageSize;
  if (layer.kind === 'token') return placeTokenCell(host.store, ps, layer, s.length);
  if (s.length % ps === 0) {
    const found = victims?.get(layer);
    const victim = found !== undefined ? found : pageStartVictim(host.options, layer);
    layer.pages.push(emptyPage(host.store.takeSlot(victim === null ? null : layer.pages[victim])));
  }
  return { slot: layer.pages[layer.pages.length - 1].slot, offset: s.length % ps };
}

/**
 * One layer of a decode step for the sequences `seqs` (their layer `layers[r]`, their
 * token at `targets[r]`): appends the new K/V, seals pages that filled (digest, host
 * backup), applies the policy's selection (recalls, evictions), and returns paged
 * attention for q [B, numHeads, D].
 */
export function decodeLayer(
  host: StepHost,
  seqs: readonly SequenceState[],
  layers: readonly LayerState[],
  targets: readonly TokenTarget[],
  written: WrittenTargets,
  decisions: DecisionRows,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  const { store } = host;
  const pageLayers = layers.filter((l): l is PageLayer => l.kind === 'page');
  if (pageLayers.length === layers.length && selectsOnDevice(host, pageLayers)) {
    return decodeLayerOnDevice(host, seqs, pageLayers, targets, written, decisions, q, k, v, scale);
  }
  if (tokensOnDevice(host, layers)) return decodeTokenLayerOnDevice(host, seqs, layers, written, decisions, q, k, v, scale);
  // The host decides here: device rows no longer mirror these pages and cells (the cells' scores come back first).
  for (const layer of pageLayers) store.deviceTables.invalidate(layer);
  tokensToHost(host, layers);
  const b = store.backend;
  const ps = host.geometry.pageSize;
  b.appendKv(store.deviceStorage, k, v, written.slots, written.offsets);
  // Pages that just filled get their digest and backup before anything is selected.
  store.sealStepFills(layers, targets, ps);
  // Every sequence's estimates are launched first and read with one synchronisation per layer.
  const pending = layers.map((layer, r) =>
    layer.kind === 'page' ? launchEstimate(host, layer, () => b.sliceRows(q, r, 1), candidatePages(host, layer)) : null,
  );
  const estimates = readEstimates(b, pending);
  // The tokens in a page layer's last page, as the sequence stands when asked.
  const lastPageLen = (s: SequenceState, layer: PageLayer) => s.length - (layer.pages.length - 1) * ps;
  const lists: { slots: number[]; last: number }[][] = seqs.map((s, r) => {
    const layer = layers[r];
    if (layer.kind === 'token') return [{ slots: layer.slots, last: layer.filled - (layer.slots.length - 1) * ps }];
    // Full (and every unbudgeted layer without digests) attends every page: no decision to make.
    if (!layer.digests && !layer.budgeted) return [{ slots: layer.pages.map((p) => p.slot), last: lastPageLen(s, layer) }];
    const decision = layer.policy.decide(contextWith(host, layer, pending[r]!, estimates[r]));
    store.applyRecalls(layer, decision);
    const lastLen = lastPageLen(s, layer);
    return decision.attend.map((pages) => ({
      slots: pages.map((p) => layer.pages[p].slot),
      last: pages[pages.length - 1] === layer.pages.length - 1 ? lastLen : ps,
    }));
  });
  const groups = Math.max(...lists.map((l) => l.length));
  const tokenScores = layers.some((l) => l.kind === 'token' && l.policy.scoreUpdate !== 'none');
  // Layers that attend every page (Full) make no decision: only their last page's length changes from step to step.
  const attendAll = layers.every((l) => l.kind === 'page' && !l.digests && !l.budgeted);
  const lastsNow = () => Int32Array.from(seqs, (s, r) => lastPageLen(s, layers[r] as PageLayer));
  const { out, tokenScores: scores } = b.pagedAttention({
    q,
    storage: store.deviceStorage,
    ...store.pageTable(lists, groups, attendAll ? lastsNow : undefined),
    scale,
    returnTokenScores: tokenScores,
  });
  if (layers.some((l) => l.kind === 'token')) {
    const data = scores ? b.readSync(scores) : null;
    const width = data ? data.length / (seqs.length * groups) : 0;
    layers.forEach((layer, r) => {
      if (layer.kind === 'token') afterTokenStep(store, host.tokenCells, layer, data ? data.subarray(r * groups * width, r * groups * width + width) : null);
    });
  }
  return out;
}

/** The pages a layer scores this step: ArkVale the full pages between sinks and window, Quest every full page but the last; none until the layer is over budget. */
function candidatePages(host: StepHost, layer: PageLayer): number[] {
  const n = layer.pages.length;
  const o = host.options;
  if (!layer.digests || n <= o.budgetPages) return [];
  return layer.budgeted ? range(o.sinkPages, n - o.windowPages) : range(0, n - 1);
}
