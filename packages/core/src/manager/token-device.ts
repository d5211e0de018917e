import { TOKEN_ROW_FIELDS as F, stepValues, type Tensor } from '../backend.js';
import type { KvPolicy } from '../policies/policy.js';
import type { LayerState, SequenceState, TokenLayer } from './layer-state.js';
import type { DecisionRows, StepHost, WrittenTargets } from './decode-step.js';

/**
 * One token-level layer (H2O, TOVA) of a decode step with the eviction on the device:
 * the rows brought in sync (uploaded whole, or the new cell the host placed written),
 * `placeTokenCells` (a row's free cell, the victim of its last step, becomes the
 * append target), the append, paged attention with token scores, and `evictTokenCells`
 * (scores updated, each full row's victim freed on the device). Nothing is read on the
 * host: the victims come back with the step's tokens and `TokenTables.settle` replays
 * them onto the cells.
 */

/**
 * Whether the device path can take this layer of the batch: every row a token layer of
 * one policy that says how its victim is chosen on the device (H2O, TOVA; StreamingLLM
 * reads no scores and stays on the host), with `selectOn: 'device'` and a backend that
 * places and evicts. Every token row can be uploaded (forks copy cells, never share
 * them), so no row keeps a batch on the host.
 */
export function tokensOnDevice(host: StepHost, layers: readonly LayerState[]): layers is readonly TokenLayer[] {
  const first = layers[0];
  return first.kind === 'token' && victimsOnDevice(host, first.policy) && layers.every((l) => l.policy === first.policy);
}

/** Whether `policy`'s token layers evict on the device (their steps gather victims: DecodeStep.victims). */
export function victimsOnDevice(host: StepHost, policy: KvPolicy): boolean {
  const b = host.store.backend;
  return (
    policy.kind === 'token' &&
    host.options.selectOn === 'device' &&
    b.placeTokenCells !== undefined &&
    b.evictTokenCells !== undefined &&
    policy.onDevice !== undefined &&
    policy.scoreUpdate !== 'none'
  );
}

/** Gives every token layer of these sequences that may decide on the device its row before the step's first layer, so that the tables grow at most once in a step. */
export function reserveTokenRows(host: StepHost, seqs: readonly SequenceState[]): void {
  const tables = host.store.tokenTables(host.options.budgetPages);
  for (const s of seqs) {
    for (const layer of s.layers) {
      if (layer.kind === 'token' && layer.deviceRow < 0 && tokensOnDevice(host, [layer])) tables.rowOf(layer);
    }
  }
}

/** Before the host decides for token layers: rows the device kept give their scores back and stop mirroring. */
export function tokensToHost(host: StepHost, layers: readonly LayerState[]): void {
  for (const layer of layers) if (layer.kind === 'token' && layer.rowSynced) host.store.tokenTablesOf(layer).toHost(layer);
}

export function decodeTokenLayerOnDevice(
  host: StepHost,
  seqs: readonly SequenceState[],
  layers: readonly TokenLayer[],
  written: WrittenTargets,
  decisions: DecisionRows,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  const { store, geometry: g } = host;
  const b = store.backend;
  const ps = g.pageSize;
  const tables = store.tokenTables(host.options.budgetPages);
  for (const layer of layers) tables.rowOf(layer);
  const tensor = tables.tensor();
  const width = Object.keys(F).length;
  layers.forEach((layer) => {
    if (!layer.rowSynced) tables.upload(layer);
    // A token in a new cell was placed by the host; one in the free cell is the device's to place.
    else if (layer.freshCell >= 0) tables.writeFreshCell(layer, layer.freshCell);
  });
  tables.flush();
  // The rows as the layers stand when the values are taken: now, and at each step a graph replays.
  const desc = () => {
    const values = new Int32Array(seqs.length * width);
    layers.forEach((layer, r) => {
      values[r * width + F.tableRow] = layer.deviceRow;
      values[r * width + F.position] = seqs[r].length - 1;
      values[r * width + F.filled] = layer.filled;
    });
    return values;
  };
  const rows = stepValues(b, desc, [seqs.length, width]);
  const cells = { tables: tensor, pages: tables.pages, pageSize: ps, rows };
  b.placeTokenCells!({ ...cells, slots: written.slots, offsets: written.offsets });
  b.appendKv(store.deviceStorage, k, v, written.slots, written.offsets);
  // Every cell in use is attended, in cell order: the lists are known on the host.
  const lists = layers.map((layer) => [{ slots: layer.slots, last: layer.filled - (layer.slots.length - 1) * ps }]);
  const { out, tokenScores } = b.pagedAttention({ q, storage: store.deviceStorage, ...store.pageTable(lists, 1), scale, returnTokenScores: true });
  const policy = layers[0].policy;
  b.evictTokenCells!({
    ...cells,
    tokenScores: tokenScores!,
    update: policy.scoreUpdate as 'accumulate' | 'replace',
    recentKept: policy.onDevice!.recentKept(tables.layout.cells - 1),
    victimsInto: decisions.victims.into(decisions.layer, layers),
  });
  return out;
}
