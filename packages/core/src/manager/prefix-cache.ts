import { invalidArgument } from '../errors.js';
import type { PagePool } from '../pool.js';
import type { PageEntry } from './layer-state.js';
import type { PageStore } from './page-store.js';

/*
 * The prefix cache (docs/DESIGN.md, "Prefix caching"): full pages of finished
 * sequences, kept after the sequence is freed so that a later prompt that starts with
 * the same tokens starts from them instead of prefilling them again.
 *
 * A cached page is one node per logical page, keyed by its parent node and a hash of
 * its own tokens (the chain of vLLM's block hashes); a node keeps its tokens, and a
 * match compares them, so a hash collision can only miss a page, never return a wrong
 * one. A node holds,
 * per layer, what the sequence had of the page: its device slot if it was resident, its
 * host backup and its digest. The pools count the cache as one more holder of those
 * slots (PagePool.retainForCache), so a slot shared with a running sequence is never
 * given back under it, and a slot only the cache holds is "reclaimable": any request
 * for pages that finds too few free takes it back, least recently used first.
 *
 * Reclaiming device slots first releases the device copies of pages that have a host
 * backup (the node stays, host-only, and a later hit recalls them); then whole nodes
 * go, leaves first, because a node is only reachable through its parent. Host and
 * digest slots are reclaimed by dropping nodes.
 */

/** One cached page: its tokens' place in the chain and, per layer, its slots. */
interface PrefixNode {
  readonly id: number;
  readonly parent: PrefixNode | null;
  readonly key: number;
  readonly tokens: readonly number[];
  /** Per layer: slot (-1 host-only), host (-1 none), digest (-1 none); backup complete or pending. */
  readonly layers: PageEntry[];
  children: number;
  lastUsed: number;
}

export interface PrefixCacheStats {
  /** Pages of one layer's worth of tokens the cache holds (nodes), and the pool slots they hold. */
  readonly pages: number;
  readonly deviceSlots: number;
  readonly hostSlots: number;
  /** Prompts looked up (and their tokens), those that started from cached pages, and the tokens they did not prefill. */
  readonly queries: number;
  readonly queryTokens: number;
  readonly hits: number;
  readonly hitTokens: number;
  /** Pages inserted, and dropped to give their slots back. */
  readonly inserted: number;
  readonly dropped: number;
  /** Device copies released (their host backup stays cached). */
  readonly demoted: number;
}

export class PrefixCache {
  private readonly nodes = new Map<number, PrefixNode>();
  private nextId = 1;
  private clock = 0;
  /** Nodes being attached to a sequence: not reclaimed while their slots are taken. */
  private readonly pinned = new Set<PrefixNode>();
  /**
   * The nodes in reclaim order (see `reclaim`), sorted when a reclaim needs it and kept
   * until a node is added or touched: a full pool asks for slots once per 32-slot node
   * it frees, and sorting thousands of nodes each time cost milliseconds a step.
   */
  private order: PrefixNode[] | null = null;
  private readonly counters = { queries: 0, queryTokens: 0, hits: 0, hitTokens: 0, inserted: 0, dropped: 0, demoted: 0 };

  constructor(
    private readonly store: PageStore,
    private readonly pageSize: number,
    private readonly numLayers: number,
  ) {
    for (const pool of [store.devicePool, store.hostPool, store.digestPool]) pool.addReclaimer((p, count) => this.reclaim(p, count));
  }

  /** The cached pages a prompt starts with, at most `maxPages`, in order (touched as used). */
  match(tokens: readonly number[], maxPages: number): PrefixNode[] {
    const found: PrefixNode[] = [];
    let parent: PrefixNode | null = null;
    for (let p = 0; p < maxPages && (p + 1) * this.pageSize <= tokens.length; p++) {
      const node = this.nodes.get(this.keyOf(parent, tokens, p));
      if (!node || !this.holdsTokens(node, tokens, p)) break;
      found.push(node);
      parent = node;
    }
    if (found.length === 0) return found;
    const now = ++this.clock;
    for (const n of found) n.lastUsed = now;
    this.order = null;
    return found;
  }

  /** Counts a lookup of a prompt of `promptTokens` that starts from `tokens` cached tokens. */
  countQuery(promptTokens: number, tokens: number): void {
    this.counters.queries++;
    this.counters.queryTokens += promptTokens;
    if (tokens > 0) {
      this.counters.hits++;
      this.counters.hitTokens += tokens;
    }
  }

  /** Host-only layer copies among these nodes: what `attach` recalls into fresh device slots. */
  promotions(nodes: readonly PrefixNode[]): number {
    let n = 0;
    for (const node of nodes) for (const e of node.layers) if (e.slot < 0) n++;
    return n;
  }

  /**
   * The pages of these nodes for a new sequence, per layer: every one resident (pages
   * that were host-only are recalled into device slots the cache keeps, so that other
   * sequences starting from them share them too), every slot retained for the sequence.
   */
  attach(nodes: readonly PrefixNode[]): PageEntry[][] {
    for (const n of nodes) this.pinned.add(n);
    try {
      this.store.devicePool.ensureFree(this.promotions(nodes));
      const src: number[] = [];
      const dst: number[] = [];
      for (const node of nodes) {
        for (const e of node.layers) {
          if (e.slot >= 0) continue;
          e.slot = this.store.devicePool.allocate();
          this.store.devicePool.retainForCache(e.slot);
          // The allocation's own reference goes to the sequence below: one retain fewer.
          this.store.devicePool.release(e.slot);
          src.push(e.host);
          dst.push(e.slot);
          this.store.counters.recalls++;
        }
      }
      if (src.length) this.store.backend.copyPages(this.store.hostStorage, src, this.store.deviceStorage, dst);
      return Array.from({ length: this.numLayers }, (_, l) =>
        nodes.map((node) => {
          const e = node.layers[l];
          this.store.devicePool.retain(e.slot);
          if (e.host >= 0) this.store.hostPool.retain(e.host);
          if (e.digest >= 0) this.store.digestPool.retain(e.digest);
          return { ...e };
        }),
      );
    } finally {
      for (const n of nodes) this.pinned.delete(n);
    }
  }

  /**
   * Keeps the first `pages` full pages of a sequence, whose tokens are `tokens`: each
   * page not cached yet becomes a node holding what the sequence has of it in every
   * layer (`pageOf(layer, page)`). Pages already cached are only touched.
   */
  insert(tokens: readonly number[], pages: number, pageOf: (layer: number, page: number) => PageEntry): void {
    if (pages * this.pageSize > tokens.length) throw invalidArgument(`caching ${pages} pages needs ${pages * this.pageSize} tokens, got ${tokens.length}`);
    const now = ++this.clock;
    this.order = null;
    let parent: PrefixNode | null = null;
    for (let p = 0; p < pages; p++) {
      const key = this.keyOf(parent, tokens, p);
      let node = this.nodes.get(key);
      // Another page under the same key (a hash collision): this chain is not cached further.
      if (node && !this.holdsTokens(node, tokens, p)) return;
      if (!node) {
        const layers = Array.from({ length: this.numLayers }, (_, l) => this.hold(pageOf(l, p)));
        const own = tokens.slice(p * this.pageSize, (p + 1) * this.pageSize);
        node = { id: this.nextId++, parent, key, tokens: own, layers, children: 0, lastUsed: now };
        this.nodes.set(key, node);
        if (parent) parent.children++;
        this.counters.inserted++;
      }
      node.lastUsed = now;
      parent = node;
    }
  }

  /** The cache's own copy of a page entry, each of its slots held for the cache. */
  private hold(page: PageEntry): PageEntry {
    if (page.slot < 0 && page.backup === 'none') throw invalidArgument('a cached page must be resident or backed up');
    if (page.slot >= 0) this.store.devicePool.retainForCache(page.slot);
    if (page.host >= 0) this.store.hostPool.retainForCache(page.host);
    if (page.digest >= 0) this.store.digestPool.retainForCache(page.digest);
    return { ...page };
  }

  /** @internal Every layer copy the cache holds, for the consistency checker. */
  entries(): PageEntry[] {
    return [...this.nodes.values()].flatMap((n) => n.layers);
  }

  /** Drops every node (the slots go back when no sequence holds them). */
  clear(): void {
    for (const node of [...this.nodes.values()]) this.releaseNode(node);
    this.nodes.clear();
    this.order = null;
  }

  stats(): PrefixCacheStats {
    let deviceSlots = 0;
    let hostSlots = 0;
    for (const node of this.nodes.values()) {
      for (const e of node.layers) {
        if (e.slot >= 0) deviceSlots++;
        if (e.host >= 0) hostSlots++;
      }
    }
    return { pages: this.nodes.size, deviceSlots, hostSlots, ...this.counters };
  }

  /** Gives `pool` back slots only the cache holds until `count` are free or nothing is left to give. */
  private reclaim(pool: PagePool, count: number): void {
    const enough = () => pool.free >= count;
    // Oldest first; within one chain (touched together) the deepest first, so leaves come before their parents.
    this.order ??= [...this.nodes.values()].sort((a, b) => a.lastUsed - b.lastUsed || b.id - a.id);
    // Dropped nodes stay in the kept order until it is sorted again; pinned ones are never reclaimed.
    const byAge = this.order.filter((n) => this.nodes.get(n.key) === n && !this.pinned.has(n));
    if (pool === this.store.devicePool) {
      for (const node of byAge) {
        if (enough()) return;
        this.demote(node);
      }
    }
    // Leaves that give this pool something go first; a leaf that gives nothing goes only
    // when nothing else is left, since its parent may hold what the pool needs.
    let dropped = true;
    while (!enough() && dropped) {
      dropped = false;
      for (const node of byAge) {
        if (enough()) return;
        if (!this.nodes.has(node.key) || node.children > 0 || !this.holdsOnly(node, pool)) continue;
        this.drop(node);
        dropped = true;
      }
      if (!dropped) {
        const leaf = byAge.find((n) => this.nodes.has(n.key) && n.children === 0 && this.holdsUnder(n, pool));
        if (leaf) {
          this.drop(leaf);
          dropped = true;
        }
      }
    }
  }

  /** Whether a node or one of its ancestors gives `pool` a slot back when dropped. */
  private holdsUnder(node: PrefixNode, pool: PagePool): boolean {
    for (let n: PrefixNode | null = node; n; n = n.parent) if (this.holdsOnly(n, pool)) return true;
    return false;
  }

  /** Whether dropping the node gives `pool` at least one slot back. */
  private holdsOnly(node: PrefixNode, pool: PagePool): boolean {
    const slotOf = (e: PageEntry) => (pool === this.store.devicePool ? e.slot : pool === this.store.hostPool ? e.host : e.digest);
    return node.layers.some((e) => slotOf(e) >= 0 && pool.refCount(slotOf(e)) === 1);
  }

  /** Releases the device copies of a node's backed-up pages that no sequence shares. */
  private demote(node: PrefixNode): void {
    for (const e of node.layers) {
      if (e.slot < 0 || e.backup === 'none' || this.store.devicePool.refCount(e.slot) > 1) continue;
      this.store.completeBackup(e);
      this.store.devicePool.releaseFromCache(e.slot);
      e.slot = -1;
      this.counters.demoted++;
    }
  }

  private drop(node: PrefixNode): void {
    this.releaseNode(node);
    this.nodes.delete(node.key);
    if (node.parent) node.parent.children--;
    this.counters.dropped++;
  }

  private releaseNode(node: PrefixNode): void {
    for (const e of node.layers) {
      if (e.slot >= 0) this.store.devicePool.releaseFromCache(e.slot);
      if (e.host >= 0) this.store.hostPool.releaseFromCache(e.host);
      if (e.digest >= 0) this.store.digestPool.releaseFromCache(e.digest);
    }
  }

  /**
   * The parent's id and a 32-bit FNV-1a hash of the page's tokens, as one number (ids
   * stay far below 2^21). Hashing, not joining the tokens into a string: a waiting 30k-token
   * prompt is looked up every step, and strings of its 960 pages cost milliseconds.
   */
  private keyOf(parent: PrefixNode | null, tokens: readonly number[], page: number): number {
    let h = 0x811c9dc5;
    for (let i = page * this.pageSize; i < (page + 1) * this.pageSize; i++) {
      h = Math.imul(h ^ (tokens[i] & 0xffff), 0x01000193);
      h = Math.imul(h ^ (tokens[i] >>> 16), 0x01000193);
    }
    return (parent ? parent.id : 0) * 2 ** 32 + (h >>> 0);
  }

  private holdsTokens(node: PrefixNode, tokens: readonly number[], page: number): boolean {
    const start = page * this.pageSize;
    for (let i = 0; i < this.pageSize; i++) if (node.tokens[i] !== tokens[start + i]) return false;
    return true;
  }
}
