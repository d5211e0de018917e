import { stepValues, type Backend, type CopyTicket, type DigestStorage, type KvStorage, type Tensor } from '../backend.js';
import type { DigestVariant, KvGeometry, ResolvedCacheOptions } from '../config.js';
import { pageBytes } from '../config.js';
import { invalidArgument } from '../errors.js';
import type { PageDecision } from '../policies/policy.js';
import { PagePool } from '../pool.js';
import { DeviceTables } from './device-tables.js';
import { TokenTables } from './token-tables.js';
import type { LayerState, PageEntry, PageLayer, TokenLayer } from './layer-state.js';

/** One attention list: device slots in order, and the valid tokens of the last. */
export interface AttentionList {
  readonly slots: readonly number[];
  readonly last: number;
}

/**
 * The pools and their storage, and every operation that moves a page between them:
 * sealing (digest and host backup), eviction, recall and release. The page manager
 * decides; this carries the decisions out and counts the traffic.
 */
export class PageStore {
  readonly devicePool: PagePool;
  readonly hostPool: PagePool;
  readonly digestPool: PagePool;
  readonly deviceStorage: KvStorage;
  readonly hostStorage: KvStorage;
  readonly digestStorage: DigestStorage;
  /** Page traffic since the pools were made; shared by every cache that shares this store. */
  readonly counters = { recalls: 0, evictions: 0, backups: 0, evictedTokens: 0, parkedPages: 0, resumedPages: 0 };
  /** Page tables of the layers that select on the device. */
  readonly deviceTables: DeviceTables;
  /** Token-cell tables of the token layers that decide on the device, one per cell count (caches sharing the store may differ in budget). */
  private readonly tokenTableSets = new Map<number, TokenTables>();
  /** The newest host backup; what a recall planned on the device must be ordered after. */
  lastBackup: CopyTicket | null = null;
  private disposed = false;

  constructor(
    readonly backend: Backend,
    geometry: KvGeometry,
    options: ResolvedCacheOptions,
  ) {
    const bytes = pageBytes(geometry);
    this.devicePool = new PagePool('device', options.devicePages, bytes);
    this.hostPool = new PagePool('host', options.hostPages, bytes);
    // Digests are kept for every page that can be scored, resident or not.
    this.digestPool = new PagePool('digest', options.devicePages + options.hostPages, 0);
    this.deviceStorage = backend.createKvStorage('device', options.devicePages, geometry);
    this.hostStorage = backend.createKvStorage('host', options.hostPages, geometry);
    this.digestStorage = backend.createDigestStorage(this.digestPool.capacity, geometry);
    this.deviceTables = new DeviceTables(backend);
  }

  /** Returns the storage to the backend (once); the store is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of [this.deviceStorage, this.hostStorage, this.digestStorage]) this.backend.freeStorage(s);
    this.deviceTables.dispose();
    for (const t of this.tokenTableSets.values()) t.dispose();
  }

  /** The token-cell tables of layers of `pages` budget pages (made on first use). */
  tokenTables(pages: number): TokenTables {
    let t = this.tokenTableSets.get(pages);
    if (!t) this.tokenTableSets.set(pages, (t = new TokenTables(this.backend, pages, this.deviceStorage.geometry.pageSize)));
    return t;
  }

  /** The token-cell tables a token layer's row (if any) lives in. */
  tokenTablesOf(layer: TokenLayer): TokenTables {
    return this.tokenTables(layer.positions.length / this.deviceStorage.geometry.pageSize);
  }

  i32(values: ArrayLike<number>): Tensor {
    return this.backend.fromArray(values, [values.length], 'i32');
  }

  /** Digest and host backup of a layer's pages that are now full. */
  sealPages(layer: PageLayer, pages: readonly number[]): void {
    this.sealFilled([{ layer, pages }]);
  }

  /**
   * Seals what a decode step's tokens filled: the last page of each page layer whose
   * token (`targets[r]`, in `layers[r]`) went into the page's last cell.
   */
  sealStepFills(layers: readonly LayerState[], targets: readonly { readonly offset: number }[], pageSize: number): void {
    this.sealFilled(
      layers.flatMap((layer, r) => (layer.kind === 'page' && targets[r].offset === pageSize - 1 ? [{ layer, pages: [layer.pages.length - 1] }] : [])),
    );
  }

  /**
   * Digests and host backups of pages that are now full, in several layers (a decode
   * step's batch): one digest launch per digest variant and one backup copy for all,
   * instead of two calls per (sequence, layer).
   */
  sealFilled(filled: readonly { readonly layer: PageLayer; readonly pages: readonly number[] }[]): void {
    const digests = new Map<DigestVariant, { slots: number[]; pages: PageEntry[] }>();
    const backups: { slots: number[]; pages: PageEntry[] } = { slots: [], pages: [] };
    for (const { layer, pages } of filled) {
      const variant = layer.digests ? layer.policy.digest : null;
      for (const p of pages) {
        const page = layer.pages[p];
        if (variant) {
          let d = digests.get(variant);
          if (!d) digests.set(variant, (d = { slots: [], pages: [] }));
          d.slots.push(page.slot);
          d.pages.push(page);
        }
        if (layer.backups) {
          backups.slots.push(page.slot);
          backups.pages.push(page);
        }
      }
    }
    for (const [variant, d] of digests) {
      const rows = this.digestPool.allocateMany(d.pages.length);
      d.pages.forEach((page, i) => (page.digest = rows[i]));
      this.backend.digestPages(this.deviceStorage, this.i32(d.slots), this.digestStorage, this.i32(rows), variant);
    }
    if (backups.pages.length) {
      const hosts = this.hostPool.allocateMany(backups.pages.length);
      const ticket = this.backend.copyPages(this.deviceStorage, backups.slots, this.hostStorage, hosts);
      this.lastBackup = ticket;
      backups.pages.forEach((page, i) => {
        page.host = hosts[i];
        page.backup = 'pending';
        page.ticket = ticket;
      });
      this.counters.backups += backups.pages.length;
    }
  }

  /** Carries out a decision's recalls (and so its evictions) with one batched copy. */
  applyRecalls(layer: PageLayer, d: PageDecision): void {
    if (d.recalls.length === 0) return;
    const victim = (r: { victim: number }) => (r.victim >= 0 ? layer.pages[r.victim] : null);
    this.devicePool.ensureFree(d.recalls.filter((r) => this.needsFreshSlot(victim(r))).length);
    const src: number[] = [];
    const dst: number[] = [];
    for (const r of d.recalls) {
      const page = layer.pages[r.page];
      if (page.slot >= 0 || page.backup !== 'complete') {
        throw invalidArgument(`policy asked to recall page ${r.page}, which is resident or has no completed backup`);
      }
      page.slot = this.takeSlot(victim(r));
      src.push(page.host);
      dst.push(page.slot);
      this.counters.recalls++;
    }
    this.backend.copyPages(this.hostStorage, src, this.deviceStorage, dst);
  }

  /** Whether a page replacing `victim` (or filling a free budget slot) needs a fresh slot. */
  needsFreshSlot(victim: PageEntry | null): boolean {
    return victim === null || this.devicePool.refCount(victim.slot) > 1;
  }

  /**
   * A device slot for a page that replaces `victim`: the victim is evicted, and its
   * slot reused unless a fork still holds it (then a fresh slot is taken).
   */
  takeSlot(victim: PageEntry | null): number {
    if (victim && !this.needsFreshSlot(victim)) {
      const slot = victim.slot;
      this.detach(victim);
      return slot;
    }
    if (victim) this.evict(victim);
    return this.devicePool.allocate();
  }

  /** Takes a page off the device, keeping its slot for the caller (it is overwritten next). */
  detach(page: PageEntry): void {
    this.completeBackup(page);
    page.slot = -1;
    this.counters.evictions++;
  }

  /** Takes a page off the device and releases its slot. */
  evict(page: PageEntry): void {
    const slot = page.slot;
    this.detach(page);
    this.devicePool.release(slot);
  }

  completeBackup(page: PageEntry): void {
    if (page.backup === 'none') throw invalidArgument('cannot evict a page that has no host backup');
    if (page.ticket) this.backend.awaitCopy(page.ticket);
    page.backup = 'complete';
    page.ticket = null;
  }

  releaseLayer(layer: LayerState): void {
    if (layer.kind === 'token') {
      this.tokenTablesOf(layer).release(layer);
      layer.slots.forEach((s) => this.devicePool.release(s));
      layer.slots = [];
      return;
    }
    this.deviceTables.release(layer);
    for (const p of layer.pages) {
      if (p.slot >= 0) this.devicePool.release(p.slot);
      if (p.host >= 0) this.hostPool.release(p.host);
      if (p.digest >= 0) this.digestPool.release(p.digest);
    }
    layer.pages = [];
  }

  /** Replays the plans and victims of device steps onto the layers' pages and cells (see DeviceTables.settle, TokenTables.settle). */
  settle(): void {
    this.settlePlans(false);
    for (const t of this.tokenTableSets.values()) t.settle(() => this.counters.evictedTokens++);
  }

  /**
   * Replays the recall plans already read back, and no others (nothing waits for the
   * device). For planning a decode step that reads nothing the plans change
   * (KvCache.settleFor): the host's slots of pages lag the device until a settle.
   */
  settleReady(): void {
    this.settlePlans(true);
  }

  private settlePlans(readyOnly: boolean): void {
    this.deviceTables.settle(
      {
        detach: (layer, page) => this.detach(layer.pages[page]),
        recalled: () => this.counters.recalls++,
      },
      readyOnly,
    );
  }

  /**
   * Page tables for paged attention: [B, groups, maxPages] slots, counts and last-page
   * lengths. `lastsNow`, when given, computes the last-page lengths from the layers as
   * they stand (the lists' `last`, for a step a graph replays: Backend.stepValues).
   */
  pageTable(lists: readonly (readonly AttentionList[])[], groups: number, lastsNow?: () => Int32Array) {
    const b = lists.length;
    const maxPages = Math.max(1, ...lists.flatMap((l) => l.map((x) => x.slots.length)));
    const table = new Int32Array(b * groups * maxPages);
    const counts = new Int32Array(b * groups);
    const lasts = new Int32Array(b * groups);
    lists.forEach((row, r) => {
      for (let g = 0; g < groups; g++) {
        // A sequence with one shared list serves every group.
        const list = row.length === 1 ? row[0] : row[g];
        table.set(list.slots, (r * groups + g) * maxPages);
        counts[r * groups + g] = list.slots.length;
        lasts[r * groups + g] = list.last;
      }
    });
    return {
      pageTable: this.backend.fromArray(table, [b, groups, maxPages], 'i32'),
      pageCounts: this.backend.fromArray(counts, [b, groups], 'i32'),
      lastPageLens: lastsNow ? stepValues(this.backend, lastsNow, [b, groups]) : this.backend.fromArray(lasts, [b, groups], 'i32'),
    };
  }
}
