import { invalidArgument } from '../errors.js';
import type { PageStore } from './page-store.js';
import type { ParkedState, PoolNeeds, SequenceState } from './layer-state.js';

/*
 * Parking: a running sequence gives every device page back and keeps its state in the
 * host pool, to be resumed later exactly as it was (the same pages resident, the same
 * cells), so its continuation is the one it would have had without parking.
 *
 * A budgeted ArkVale layer already has a completed-or-pending backup of every full
 * page: parking copies only its partial page. Pages that have no backup by design
 * (unbudgeted layers, Full, Quest) and the cells of token-level layers are copied to
 * the host as well, so any policy can be parked; those extra host copies exist only
 * while parked and are released on resume. Resuming copies the resident set back
 * (a recall of each page): nothing is recomputed.
 */

/** Device pages that parking copies to the host (pages without a backup, token cells). */
export function parkNeeds(seq: SequenceState): PoolNeeds {
  let host = 0;
  for (const layer of seq.layers) {
    if (layer.kind === 'token') host += layer.slots.length;
    else for (const p of layer.pages) if (p.slot >= 0 && p.host < 0) host++;
  }
  return { device: 0, host, digests: 0 };
}

/** Device pages resuming takes back. */
export function resumeNeeds(seq: SequenceState): PoolNeeds {
  const parked = seq.parked;
  if (!parked) return { device: 0, host: 0, digests: 0 };
  let device = 0;
  seq.layers.forEach((_, l) => (device += (parked.resident[l] ?? parked.cellHosts[l] ?? []).length));
  return { device, host: 0, digests: 0 };
}

export function park(store: PageStore, seq: SequenceState): number {
  if (seq.parked) throw invalidArgument(`sequence ${seq.id} is already parked`);
  if (seq.chunked || seq.prefilled.includes(false)) throw invalidArgument(`sequence ${seq.id} cannot be parked before its prompt is prefilled`);
  const needs = parkNeeds(seq);
  store.hostPool.ensureFree(needs.host);
  const src: number[] = [];
  const dst: number[] = [];
  const state: ParkedState = { resident: [], copies: [], cellHosts: [] };
  const release: number[] = [];
  for (const layer of seq.layers) {
    if (layer.kind === 'token') {
      const hosts = layer.slots.map((s) => {
        const h = store.hostPool.allocate();
        src.push(s);
        dst.push(h);
        return h;
      });
      release.push(...layer.slots);
      layer.slots = [];
      state.resident.push(null);
      state.copies.push(null);
      state.cellHosts.push(hosts);
      continue;
    }
    const resident: number[] = [];
    const copies: number[] = [];
    layer.pages.forEach((p, i) => {
      if (p.slot < 0) return;
      resident.push(i);
      if (p.host < 0) {
        p.host = store.hostPool.allocate();
        src.push(p.slot);
        dst.push(p.host);
        copies.push(i);
      } else {
        store.completeBackup(p);
      }
      release.push(p.slot);
      p.slot = -1;
    });
    state.resident.push(resident);
    state.copies.push(copies);
    state.cellHosts.push(null);
  }
  if (src.length) store.backend.awaitCopy(store.backend.copyPages(store.deviceStorage, src, store.hostStorage, dst));
  // The copies are ordered before anything that reuses the slots.
  for (const s of release) store.devicePool.release(s);
  seq.layers.forEach((layer, l) => {
    if (layer.kind === 'page') for (const i of state.copies[l]!) Object.assign(layer.pages[i], { backup: 'complete', ticket: null });
  });
  store.counters.parkedPages += src.length;
  seq.parked = state;
  return src.length;
}

export function resume(store: PageStore, seq: SequenceState): number {
  const parked = seq.parked;
  if (!parked) throw invalidArgument(`sequence ${seq.id} is not parked`);
  store.devicePool.ensureFree(resumeNeeds(seq).device);
  const src: number[] = [];
  const dst: number[] = [];
  seq.layers.forEach((layer, l) => {
    if (layer.kind === 'token') {
      layer.slots = parked.cellHosts[l]!.map((h) => {
        const s = store.devicePool.allocate();
        src.push(h);
        dst.push(s);
        return s;
      });
      return;
    }
    for (const i of parked.resident[l]!) {
      const p = layer.pages[i];
      p.slot = store.devicePool.allocate();
      src.push(p.host);
      dst.push(p.slot);
    }
  });
  if (src.length) store.backend.awaitCopy(store.backend.copyPages(store.hostStorage, src, store.deviceStorage, dst));
  // Host copies made only for parking go back to the pool; real backups stay.
  seq.layers.forEach((layer, l) => {
    if (layer.kind === 'token') {
      for (const h of parked.cellHosts[l]!) store.hostPool.release(h);
      return;
    }
    for (const i of parked.copies[l]!) {
      const p = layer.pages[i];
      store.hostPool.release(p.host);
      Object.assign(p, { host: -1, backup: 'none', ticket: null });
    }
  });
  store.counters.resumedPages += src.length;
  seq.parked = null;
  return src.length;
}

/** Host copies a parked sequence holds beyond its pages' own (token cells). */
export function releaseParked(store: PageStore, seq: SequenceState): void {
  const parked = seq.parked;
  if (!parked) return;
  for (const hosts of parked.cellHosts) for (const h of hosts ?? []) store.hostPool.release(h);
  seq.parked = null;
}
