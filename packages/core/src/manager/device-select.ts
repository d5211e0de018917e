import { SELECT_ROW_FIELDS, stepValues, type Tensor } from '../backend.js';
import type { KvPolicy, PagePolicy } from '../policies/policy.js';
import type { PageLayer, SequenceState } from './layer-state.js';
import type { DecisionRows, StepHost, TokenTarget, WrittenTargets } from './decode-step.js';
import { tokensOnDevice } from './token-device.js';

/**
 * One layer of a decode step with ArkVale's selection on the device (docs/DEVICE-STEP.md):
 * append, seal, then one `selectResident` for the whole batch (estimates, top-k,
 * recall plan, page tables and lists), the recalls straight from the host pool, and
 * paged attention over the lists. Nothing is read on the host; the plans come back
 * with the step's tokens and `DeviceTables.settle` replays them onto the pages.
 * Quest's layers take `selectAttend` instead (per-head lists, no page moves, no plans).
 */

/**
 * Whether the device path can take this layer of the batch: Quest's layers, and ArkVale layers whose
 * every row mirrors, or can mirror, its pages with no free budget slot (at budget,
 * each recall takes a victim's slot) and no slot shared with a fork.
 */
export function selectsOnDevice(host: StepHost, layers: readonly PageLayer[]): boolean {
  if (!devicePolicy(host, layers[0])) return false;
  // Quest moves no page, so any row can be uploaded as it is (shared slots included).
  if (questOnDevice(host, layers[0])) return true;
  return layers.every((layer) => layer.rowSynced || mirrorable(host, layer));
}

/**
 * Whether the layer's policy selects on the device at all, with `selectOn: 'device'`:
 * ArkVale (budgeted, recallable, with digests), or Quest where the backend has `selectAttend`.
 */
function devicePolicy(host: StepHost, layer: PageLayer): boolean {
  return arkvaleOnDevice(host, layer.policy) || questOnDevice(host, layer);
}

/** An ArkVale-like policy (budgeted, recallable, with digests) with `selectOn: 'device'`: its layers' selections come back as plans. */
function arkvaleOnDevice(host: StepHost, policy: PagePolicy): boolean {
  return host.options.selectOn === 'device' && policy.digest !== null && policy.budgeted && policy.recallable;
}

/**
 * A policy that attends a selection of pages that all stay resident (Quest: no budget
 * to evict to, digests to score by), when the backend can list them on the device.
 */
function questOnDevice(host: StepHost, layer: PageLayer): boolean {
  const policy = layer.policy;
  return host.options.selectOn === 'device' && !policy.budgeted && policy.digest !== null && host.store.backend.selectAttend !== undefined;
}

/** The width of a step's plan rows when `policy` selects on the device as ArkVale does (DecodeStep.plans), else null. */
export function planWidth(host: StepHost, policy: KvPolicy): number | null {
  if (policy.kind !== 'page' || !arkvaleOnDevice(host, policy)) return null;
  return 1 + 2 * host.options.topK * policy.selectionGroups(host.geometry.numHeads, host.geometry.numKvHeads);
}

/**
 * Whether every device table row of the sequence mirrors its layer (no whole row to
 * upload in its next step): page layers that select on the device, and token layers that
 * evict there. A graph key requires it, so that steps under one key do the same work.
 */
export function rowsInSync(host: StepHost, s: SequenceState): boolean {
  return s.layers.every((layer) => (layer.kind === 'page' ? layer.rowSynced || !devicePolicy(host, layer) : layer.rowSynced || !tokensOnDevice(host, [layer])));
}

/**
 * Whether the forward pass of the sequence's next decode step changes nothing on the
 * host beyond the decision rows it gathers (KvCache.canSkipForward): each page layer
 * selects on the device from a row in sync, or attends all its pages (no decision);
 * each token layer evicts on the device and its token goes into the cell the device
 * freed (none placed by the host, which the forward pass would write).
 */
export function forwardChangesNothing(host: StepHost, s: SequenceState): boolean {
  return s.layers.every((layer) =>
    layer.kind === 'page'
      ? (layer.rowSynced && devicePolicy(host, layer)) || (!layer.digests && !layer.budgeted)
      : layer.rowSynced && layer.freeCell >= 0 && tokensOnDevice(host, [layer]),
  );
}

/**
 * Gives every layer of these sequences that may select on the device its table row
 * before the step's first layer, so that the tables grow at most once in a step:
 * growing marks every row out of sync, and rows of the layers already done would be
 * uploaded whole again next step.
 */
export function reserveRows(host: StepHost, seqs: readonly SequenceState[]): void {
  for (const s of seqs) {
    for (const layer of s.layers) {
      if (layer.kind === 'page' && layer.deviceRow < 0 && devicePolicy(host, layer)) host.store.deviceTables.rowOf(layer);
    }
  }
}

/** A row can be uploaded when it holds min(pages, budget) resident pages, none shared. */
function mirrorable(host: StepHost, layer: PageLayer): boolean {
  let resident = 0;
  for (const p of layer.pages) {
    if (p.slot < 0) continue;
    resident++;
    if (host.store.devicePool.refCount(p.slot) > 1) return false;
  }
  // The new page of this step is already placed.
  return resident === Math.min(layer.pages.length, host.options.budgetPages);
}

/** What a device-selecting policy says of one row: its pages to score, and the most pages it may attend. */
interface RowSelection {
  readonly firstCandidate: number;
  readonly candidates: number;
  readonly attended: number;
}

/**
 * The part of a device-selecting layer both policies share: the new K/V appended, the
 * pages that filled sealed (one digest launch and one backup copy for the batch), each
 * row's device table brought in sync (uploaded whole, or the pages `changed` names
 * written), and the selection rows (SELECT_ROW_FIELDS) with their widths.
 */
function prepareSelection(
  host: StepHost,
  seqs: readonly SequenceState[],
  layers: readonly PageLayer[],
  targets: readonly TokenTarget[],
  written: WrittenTargets,
  k: Tensor,
  v: Tensor,
  changed: (layer: PageLayer, target: TokenTarget) => number[],
  select: (layer: PageLayer) => RowSelection,
): { tables: Tensor; rows: Tensor; maxCandidates: number; maxPages: number } {
  const { store, geometry: g } = host;
  const b = store.backend;
  const ps = g.pageSize;
  const tables = store.deviceTables;
  b.appendKv(store.deviceStorage, k, v, written.slots, written.offsets);
  store.sealStepFills(layers, targets, ps);
  layers.forEach((layer) => tables.rowOf(layer));
  const tensor = tables.tensor(Math.max(...layers.map((l) => l.pages.length)));
  const F = SELECT_ROW_FIELDS;
  const width = Object.keys(F).length;
  let maxCandidates = 1;
  let maxPages = 1;
  layers.forEach((layer, r) => {
    if (!layer.rowSynced) tables.upload(layer);
    else for (const page of changed(layer, targets[r])) tables.writePage(layer, page);
    const sel = select(layer);
    maxCandidates = Math.max(maxCandidates, sel.candidates);
    maxPages = Math.max(maxPages, sel.attended);
  });
  tables.flush();
  // The rows as the layers stand when the values are taken: now, and at each step a graph replays (the last page's length grows).
  const rows = () => {
    const values = new Int32Array(seqs.length * width);
    layers.forEach((layer, r) => {
      const n = layer.pages.length;
      const sel = select(layer);
      const row = values.subarray(r * width, (r + 1) * width);
      row[F.tableRow] = layer.deviceRow;
      row[F.numPages] = n;
      row[F.firstCandidate] = sel.firstCandidate;
      row[F.candidates] = sel.candidates;
      row[F.lastPageLen] = seqs[r].length - (n - 1) * ps;
    });
    return values;
  };
  return { tables: tensor, rows: stepValues(b, rows, [seqs.length, width]), maxCandidates, maxPages };
}

export function decodeLayerOnDevice(
  host: StepHost,
  seqs: readonly SequenceState[],
  layers: readonly PageLayer[],
  targets: readonly TokenTarget[],
  written: WrittenTargets,
  decisions: DecisionRows,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  if (questOnDevice(host, layers[0])) return decodeQuestLayerOnDevice(host, seqs, layers, targets, written, q, k, v, scale);
  const { store, options: o, geometry: g } = host;
  const b = store.backend;
  const ps = g.pageSize;
  const prepared = prepareSelection(
    host,
    seqs,
    layers,
    targets,
    written,
    k,
    v,
    // What the host changed since the last step: a new page took the slot of the page leaving the window; a page filled.
    (layer, target) => {
      const n = layer.pages.length;
      const pages: number[] = [];
      if (target.offset === 0) {
        pages.push(n - 1);
        if (n - o.windowPages - 1 >= 0) pages.push(n - o.windowPages - 1);
      }
      if (target.offset === ps - 1) pages.push(n - 1);
      return pages;
    },
    (layer) => {
      const n = layer.pages.length;
      return {
        firstCandidate: o.sinkPages,
        candidates: n > o.budgetPages ? Math.max(0, n - o.windowPages - o.sinkPages) : 0,
        attended: Math.min(n, o.budgetPages),
      };
    },
  );
  const policy = layers[0].policy;
  const groups = policy.selectionGroups(g.numHeads, g.numKvHeads);
  const selected = b.selectResident({
    q,
    digests: store.digestStorage,
    variant: policy.digest!,
    groups,
    ...prepared,
    k: o.topK,
    planInto: decisions.plans.into(decisions.layer, layers, planWidth(host, policy)!),
  });
  // A recall may overwrite a victim whose backup is still being copied out: KvCache.beginStep ordered the step after it.
  b.recallListed(store.hostStorage, store.deviceStorage, selected.copies);
  const { pageTable, pageCounts, lastPageLens } = selected;
  return b.pagedAttention({ q, storage: store.deviceStorage, pageTable, pageCounts, lastPageLens, scale }).out;
}

/**
 * One Quest layer of a decode step on the device: append, seal, then one `selectAttend`
 * for the whole batch (per head, the top budgetPages - 1 full pages but the last by
 * the estimate, plus the last page, as `questPolicy().decide` chooses them) and paged
 * attention over those lists. Nothing is read on the host, and no page moves.
 */
function decodeQuestLayerOnDevice(
  host: StepHost,
  seqs: readonly SequenceState[],
  layers: readonly PageLayer[],
  targets: readonly TokenTarget[],
  written: WrittenTargets,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  const { store, options: o, geometry: g } = host;
  const b = store.backend;
  const ps = g.pageSize;
  const topK = Math.max(0, o.budgetPages - 1);
  const prepared = prepareSelection(
    host,
    seqs,
    layers,
    targets,
    written,
    k,
    v,
    // What the host changed since the last step: a new page (placed), or the last page filled (its digest).
    (layer, target) => (target.offset === 0 || target.offset === ps - 1 ? [layer.pages.length - 1] : []),
    // Every full page but the last is a candidate once the layer is over budget (see `candidatePages`).
    (layer) => {
      const n = layer.pages.length;
      const candidates = n > o.budgetPages ? n - 1 : 0;
      return { firstCandidate: 0, candidates, attended: n - candidates + Math.min(topK, candidates) };
    },
  );
  const policy = layers[0].policy;
  const { pageTable, pageCounts, lastPageLens } = b.selectAttend!({
    q,
    digests: store.digestStorage,
    variant: policy.digest!,
    groups: policy.selectionGroups(g.numHeads, g.numKvHeads),
    ...prepared,
    k: topK,
  });
  return b.pagedAttention({ q, storage: store.deviceStorage, pageTable, pageCounts, lastPageLens, scale }).out;
}
