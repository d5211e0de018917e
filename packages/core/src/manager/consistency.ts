import { internalError } from '../errors.js';
import type { PagePool } from '../pool.js';
import type { KvCache } from './kv-cache.js';

/**
 * Checks every invariant of the manager and throws naming the first broken one:
 * pool reference counts equal the references held, no slot held twice by one
 * (sequence, layer), resident pages within budget, every page either resident or
 * backed up, every evicted page's backup complete, page counts matching lengths.
 */
export function checkConsistency(caches: KvCache | readonly KvCache[]): void {
  // Caches that share one page store are checked together against its pools.
  const list: readonly KvCache[] = Array.isArray(caches) ? caches : [caches as KvCache];
  const store = list[0].store;
  if (list.some((c) => c.store !== store)) throw internalError('checkConsistency: the caches do not share one page store');
  const refs = {
    device: new Map<number, number>(),
    host: new Map<number, number>(),
    digest: new Map<number, number>(),
  };
  const hold = (m: Map<number, number>, slot: number) => m.set(slot, (m.get(slot) ?? 0) + 1);
  const cached = { device: new Set<number>(), host: new Set<number>(), digest: new Set<number>() };
  for (const cache of list) {
    for (const e of cache.rawPrefixEntries) {
      if (e.slot < 0 && e.backup !== 'complete') throw internalError('a prefix cache page is off the device without a completed backup');
      const holdCached = (kind: keyof typeof cached, slot: number) => {
        if (slot < 0) return;
        if (cached[kind].has(slot)) throw internalError(`${kind} slot ${slot} is held twice by prefix caches`);
        cached[kind].add(slot);
        hold(refs[kind], slot);
      };
      holdCached('device', e.slot);
      holdCached('host', e.host);
      holdCached('digest', e.digest);
    }
  }
  for (const cache of list) {
    const ps = cache.pageSize;
    const o = cache.options;
    for (const s of cache.rawSequences.values()) {
      const parked = s.parked;
      if (s.chunked) {
        for (const b of s.chunked.tokens) for (const slot of [...(b?.slots ?? []), ...(b?.cells ?? [])]) hold(refs.device, slot);
      }
      s.layers.forEach((layer, l) => {
        const where = `sequence ${s.id} layer ${l}`;
        const own = new Set<number>();
        const holdDevice = (slot: number) => {
          if (own.has(slot)) throw internalError(`${where} holds device slot ${slot} twice`);
          own.add(slot);
          hold(refs.device, slot);
        };
        if (s.chunked && layer.kind === 'page') {
          for (const p of layer.pages) {
            holdDevice(p.slot);
            if (p.host >= 0) hold(refs.host, p.host);
            if (p.digest >= 0) hold(refs.digest, p.digest);
          }
          return;
        }
        if (!s.prefilled[l]) {
          if ((layer.kind === 'page' ? layer.pages.length : layer.slots.length) !== 0) throw internalError(`${where} has pages before prefill`);
          return;
        }
        if (parked && layer.kind === 'token') {
          if (layer.slots.length !== 0) throw internalError(`${where} is parked but holds device cells`);
          for (const h of parked.cellHosts[l] ?? []) hold(refs.host, h);
          return;
        }
        if (layer.kind === 'token') {
          layer.slots.forEach(holdDevice);
          if (layer.slots.length > o.budgetPages) throw internalError(`${where} holds ${layer.slots.length} pages over a budget of ${o.budgetPages}`);
          if (layer.slots.length !== Math.ceil(layer.filled / ps)) throw internalError(`${where} has ${layer.slots.length} pages for ${layer.filled} cells`);
          return;
        }
        if (layer.pages.length !== Math.ceil(s.length / ps)) {
          throw internalError(`${where} has ${layer.pages.length} pages for ${s.length} tokens`);
        }
        let resident = 0;
        layer.pages.forEach((p, i) => {
          if (p.slot >= 0) {
            holdDevice(p.slot);
            resident++;
          } else if (p.backup !== 'complete') {
            throw internalError(`${where} page ${i} is off the device without a completed backup (lost)`);
          }
          if (p.host >= 0) hold(refs.host, p.host);
          if (p.digest >= 0) hold(refs.digest, p.digest);
          const full = i < layer.pages.length - 1 || s.length % ps === 0;
          if (layer.backups && full && p.host < 0) throw internalError(`${where} full page ${i} has no backup`);
        });
        if (layer.budgeted && resident > o.budgetPages) {
          throw internalError(`${where} has ${resident} resident pages over a budget of ${o.budgetPages}`);
        }
        const last = layer.pages.length - 1;
        if (parked) {
          if (resident !== 0) throw internalError(`${where} is parked but holds ${resident} device page(s)`);
        } else if (last >= 0 && layer.pages[last].slot < 0) throw internalError(`${where} last page is not resident`);
      });
    }
  }
  compare(store.devicePool, refs.device, cached.device);
  compare(store.hostPool, refs.host, cached.host);
  compare(store.digestPool, refs.digest, cached.digest);
}

function compare(pool: PagePool, held: Map<number, number>, cached: Set<number>): void {
  const cachedOnly = [...cached].filter((slot) => held.get(slot) === 1).length;
  if (pool.reclaimable !== cachedOnly) throw internalError(`${pool.name} pool counts ${pool.reclaimable} reclaimable slots, found ${cachedOnly}`);
  if (pool.used !== held.size) {
    throw internalError(`${pool.name} pool has ${pool.used} slots in use but sequences hold ${held.size}`);
  }
  for (const [slot, n] of held) {
    if (pool.refCount(slot) !== n) throw internalError(`${pool.name} slot ${slot} counts ${pool.refCount(slot)} holders, found ${n}`);
  }
}
