import type { Tensor } from '../backend.js';
import type { PageStore } from './page-store.js';
import type { SequenceState, TokenLayer } from './layer-state.js';

/*
 * Token-level layers (StreamingLLM, H2O, TOVA): a fixed set of cells, one always kept
 * free for the incoming token; after attention the policy names the cell to evict.
 */

export function prefillTokens(
  store: PageStore,
  cells: number,
  pageSize: number,
  seq: SequenceState,
  layer: TokenLayer,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  const capacity = cells - 1;
  const kept = Math.min(seq.length, capacity);
  store.devicePool.ensureFree(Math.ceil(kept / pageSize));
  const stat = layer.policy.prefillScores ?? undefined;
  const { out, keyScores } = store.backend.causalAttention({ q, k, v, scale, keyScores: stat });
  const scores = keyScores ? store.backend.readSync(keyScores) : null;
  const keep = layer.policy.prefillKeep(seq.length, capacity, scores);
  layer.slots = store.devicePool.allocateMany(Math.ceil(keep.length / pageSize));
  const idx = store.i32(keep);
  store.backend.appendKv(
    store.deviceStorage,
    store.backend.gatherRows(k, idx),
    store.backend.gatherRows(v, idx),
    store.i32(keep.map((_, c) => layer.slots[Math.floor(c / pageSize)])),
    store.i32(keep.map((_, c) => c % pageSize)),
  );
  keep.forEach((pos, c) => {
    layer.positions[c] = pos;
    layer.scores[c] = scores ? scores[pos] : 0;
  });
  layer.filled = keep.length;
  store.counters.evictedTokens += seq.length - keep.length;
  return out;
}

/** Where the next token goes: the free cell, or the next unused one (a new page when one starts). */
export function placeTokenCell(store: PageStore, pageSize: number, layer: TokenLayer, position: number): { slot: number; offset: number } {
  let cell = layer.freeCell;
  if (cell >= 0) {
    layer.freeCell = -1;
    layer.freshCell = -1;
  } else {
    cell = layer.filled++;
    layer.freshCell = cell;
    if (cell % pageSize === 0) layer.slots.push(store.devicePool.allocate());
  }
  layer.positions[cell] = position;
  layer.scores[cell] = 0;
  return { slot: layer.slots[Math.floor(cell / pageSize)], offset: cell % pageSize };
}

export function afterTokenStep(store: PageStore, cells: number, layer: TokenLayer, probs: Float32Array | Int32Array | null): void {
  if (probs && layer.policy.scoreUpdate !== 'none') {
    for (let c = 0; c < layer.filled; c++) {
      layer.scores[c] = layer.policy.scoreUpdate === 'accumulate' ? layer.scores[c] + probs[c] : probs[c];
    }
  }
  if (layer.filled < cells) return;
  const cell = layer.policy.victim({
    positions: layer.positions,
    scores: layer.scores,
    filled: layer.filled,
    capacity: cells - 1,
  });
  layer.positions[cell] = -1;
  layer.scores[cell] = 0;
  layer.freeCell = cell;
  store.counters.evictedTokens++;
}
