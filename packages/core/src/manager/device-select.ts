import { SELECT_ROW_FIELDS, type Tensor } from '../backend.js';
import type { PageLayer, SequenceState } from './layer-state.js';
import type { PlanRows, StepHost, TokenTarget, WrittenTargets } from './decode-step.js';

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
  const policy = layer.policy;
  if (host.options.selectOn !== 'device' || policy.digest === null) return false;
  return (policy.budgeted && policy.recallable) || questOnDevice(host, layer);
}

/**
 * A policy that attends a selection of pages that all stay resident (Quest: no budget
 * to evict to, digests to score by), when the backend can list them on the device.
 */
function questOnDevice(host: StepHost, layer: PageLayer): boolean {
  return !layer.policy.budgeted && layer.policy.digest !== null && host.store.backend.selectAttend !== undefined;
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

export function decodeLayerOnDevice(
  host: StepHost,
  seqs: readonly SequenceState[],
  layers: readonly PageLayer[],
  targets: readonly TokenTarget[],
  written: WrittenTargets,
  plans: PlanRows,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  if (questOnDevice(host, layers[0])) return decodeQuestLayerOnDevice(host, seqs, layers, targets, written, q, k, v, scale);
  const { store, options: o, geometry: g } = host;
  const b = store.backend;
  const ps = g.pageSize;
  const tables = store.deviceTables;
  b.appendKv(store.deviceStorage, k, v, written.slots, written.offsets);
  // Pages that just filled, in the whole batch: one digest launch and one backup copy.
  store.sealStepFills(layers, targets, ps);
  layers.forEach((layer) => tables.rowOf(layer));
  const tensor = tables.tensor(Math.max(...layers.map((l) => l.pages.length)));
  const F = SELECT_ROW_FIELDS;
  const width = Object.keys(F).length;
  const rows = new Int32Array(seqs.length * width);
  let maxCandidates = 1;
  let maxPages = 1;
  layers.forEach((layer, r) => {
    const n = layer.pages.length;
    const sealed = targets[r].offset === ps - 1;
    if (!layer.rowSynced) tables.upload(layer);
    else {
      // What the host changed since the last step: a new page took the slot of the page leaving the window; a page filled.
      if (targets[r].offset === 0) {
        tables.writePage(layer, n - 1);
        if (n - o.windowPages - 1 >= 0) tables.writePage(layer, n - o.windowPages - 1);
      }
      if (sealed) tables.writePage(layer, n - 1);
    }
    const candidates = n > o.budgetPages ? Math.max(0, n - o.windowPages - o.sinkPages) : 0;
    maxCandidates = Math.max(maxCandidates, candidates);
    maxPages = Math.max(maxPages, Math.min(n, o.budgetPages));
    const row = rows.subarray(r * width, (r + 1) * width);
    row[F.tableRow] = layer.deviceRow;
    row[F.numPages] = n;
    row[F.firstCandidate] = o.sinkPages;
    row[F.candidates] = candidates;
    row[F.lastPageLen] = seqs[r].length - (n - 1) * ps;
  });
  tables.flush();
  const policy = layers[0].policy;
  const groups = policy.selectionGroups(g.numHeads, g.numKvHeads);
  const selected = b.selectResident({
    q,
    digests: store.digestStorage,
    variant: policy.digest!,
    groups,
    tables: tensor,
    rows: b.fromArray(rows, [seqs.length, width], 'i32'),
    k: o.topK,
    maxCandidates,
    maxPages,
    planInto: plans.plans.into(plans.layer, 1 + 2 * o.topK * groups, layers),
  });
  // A recall may overwrite a victim whose backup is still being copied out.
  if (store.lastBackup) b.awaitCopy(store.lastBackup);
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
  const tables = store.deviceTables;
  b.appendKv(store.deviceStorage, k, v, written.slots, written.offsets);
  store.sealStepFills(layers, targets, ps);
  layers.forEach((layer) => tables.rowOf(layer));
  const tensor = tables.tensor(Math.max(...layers.map((l) => l.pages.length)));
  const F = SELECT_ROW_FIELDS;
  const width = Object.keys(F).length;
  const rows = new Int32Array(seqs.length * width);
  const topK = Math.max(0, o.budgetPages - 1);
  let maxCandidates = 1;
  let maxPages = 1;
  layers.forEach((layer, r) => {
    const n = layer.pages.length;
    if (!layer.rowSynced) tables.upload(layer);
    // What the host changed since the last step: a new page (placed), or the last page filled (its digest).
    else if (targets[r].offset === 0 || targets[r].offset === ps - 1) tables.writePage(layer, n - 1);
    // Every full page but the last is a candidate once the layer is over budget (see `candidatePages`).
    const candidates = n > o.budgetPages ? n - 1 : 0;
    maxCandidates = Math.max(maxCandidates, candidates);
    maxPages = Math.max(maxPages, n - candidates + Math.min(topK, candidates));
    const row = rows.subarray(r * width, (r + 1) * width);
    row[F.tableRow] = layer.deviceRow;
    row[F.numPages] = n;
    row[F.firstCandidate] = 0;
    row[F.candidates] = candidates;
    row[F.lastPageLen] = seqs[r].length - (n - 1) * ps;
  });
  tables.flush();
  const policy = layers[0].policy;
  const { pageTable, pageCounts, lastPageLens } = b.selectAttend!({
    q,
    digests: store.digestStorage,
    variant: policy.digest!,
    groups: policy.selectionGroups(g.numHeads, g.numKvHeads),
    tables: tensor,
    rows: b.fromArray(rows, [seqs.length, width], 'i32'),
    k: topK,
    maxCandidates,
    maxPages,
  });
  return b.pagedAttention({ q, storage: store.deviceStorage, pageTable, pageCounts, lastPageLens, scale }).out;
}
