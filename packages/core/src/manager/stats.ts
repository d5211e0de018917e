import type { PoolUsage } from '../pool.js';
import type { BackupState, LayerState, SequenceState } from './layer-state.js';
import type { PageStore } from './page-store.js';

export interface KvStats {
  readonly sequences: number;
  readonly device: PoolUsage;
  readonly host: PoolUsage;
  /** Device pages held by sequences (a page shared by forks counts once per holder). */
  readonly residentPages: number;
  /** Pages that live only on the host (evicted, recallable). */
  readonly hostOnlyPages: number;
  readonly recalls: number;
  readonly evictions: number;
  readonly backups: number;
  /** Tokens dropped for good by eviction-without-recall policies. */
  readonly evictedTokens: number;
  readonly bytesToDevice: number;
  readonly bytesToHost: number;
  /** Sequences parked in the host pool now. */
  readonly parkedSequences: number;
  /** Pages copied to the host to park sequences, and back to the device to resume them. */
  readonly parkedPages: number;
  readonly resumedPages: number;
}

export type LayerView =
  | {
      readonly kind: 'page';
      readonly numPages: number;
      /** Logical pages on the device, ascending. */
      readonly resident: number[];
      readonly slots: number[];
      readonly backups: BackupState[];
    }
  | {
      readonly kind: 'token';
      /** Sequence positions the cache holds, ascending. */
      readonly positions: number[];
      readonly slots: number[];
    };

export function layerView(layer: LayerState): LayerView {
  if (layer.kind === 'token') {
    return {
      kind: 'token',
      positions: Array.from(layer.positions.subarray(0, layer.filled))
        .filter((p) => p >= 0)
        .sort((a, b) => a - b),
      slots: [...layer.slots],
    };
  }
  return {
    kind: 'page',
    numPages: layer.pages.length,
    resident: layer.pages.flatMap((p, i) => (p.slot >= 0 ? [i] : [])),
    slots: layer.pages.map((p) => p.slot),
    backups: layer.pages.map((p) => p.backup),
  };
}

export function collectStats(sequences: Iterable<SequenceState>, store: PageStore): KvStats {
  let resident = 0;
  let hostOnly = 0;
  let count = 0;
  let parked = 0;
  for (const s of sequences) {
    count++;
    if (s.parked) parked++;
    for (const layer of s.layers) {
      if (layer.kind === 'token') resident += layer.slots.length;
      else for (const p of layer.pages) p.slot >= 0 ? resident++ : hostOnly++;
    }
  }
  const bytes = store.devicePool.bytesPerPage;
  const c = store.counters;
  return {
    sequences: count,
    device: store.devicePool.usage(),
    host: store.hostPool.usage(),
    residentPages: resident,
    hostOnlyPages: hostOnly,
    recalls: c.recalls,
    evictions: c.evictions,
    backups: c.backups,
    evictedTokens: c.evictedTokens,
    bytesToDevice: c.recalls * bytes,
    bytesToHost: c.backups * bytes,
    parkedSequences: parked,
    parkedPages: c.parkedPages,
    resumedPages: c.resumedPages,
  };
}
