import { PoolExhaustedError, internalError } from './errors.js';

export interface PoolUsage {
  readonly name: string;
  readonly capacity: number;
  readonly used: number;
  readonly free: number;
  readonly bytesPerPage: number;
  readonly usedBytes: number;
  readonly freeBytes: number;
}

/**
 * A fixed set of page slots with reference counts. A slot is shared (count > 1)
 * when forked sequences hold the same full page; it returns to the free list only
 * when its last holder releases it.
 */
export class PagePool {
  readonly name: string;
  readonly capacity: number;
  readonly bytesPerPage: number;
  private readonly refs: Int32Array;
  private readonly freeList: number[];
  /** Slots one of whose holders is a prefix cache (PrefixCache); at most one cache holds a slot. */
  private readonly cached: Uint8Array;
  private cachedOnly = 0;
  /**
   * Called when a request for slots finds too few free: gives back slots that only a
   * prefix cache holds (see `reclaimable`), least recently used first.
   */
  private readonly reclaimers: ((pool: PagePool, count: number) => void)[] = [];

  constructor(name: string, capacity: number, bytesPerPage: number) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new PoolExhaustedError(name, 0, 0, 0);
    }
    this.name = name;
    this.capacity = capacity;
    this.bytesPerPage = bytesPerPage;
    this.refs = new Int32Array(capacity);
    this.cached = new Uint8Array(capacity);
    // Pop from the end so slot 0 is handed out first (readable traces).
    this.freeList = Array.from({ length: capacity }, (_, i) => capacity - 1 - i);
  }

  get free(): number {
    return this.freeList.length;
  }

  get used(): number {
    return this.capacity - this.freeList.length;
  }

  /** Slots held by a prefix cache and nothing else: a request for slots can have them back. */
  get reclaimable(): number {
    return this.cachedOnly;
  }

  /** Slots a request can get: the free ones and those only a prefix cache holds. */
  get available(): number {
    return this.freeList.length + this.cachedOnly;
  }

  /** A prefix cache's way of giving slots back when a request finds too few free. */
  addReclaimer(reclaim: (pool: PagePool, count: number) => void): void {
    this.reclaimers.push(reclaim);
  }

  /** Throws PoolExhaustedError naming this pool unless `count` slots are free (after prefix caches give back what they can). */
  ensureFree(count: number): void {
    if (count > this.freeList.length) this.reclaim(count);
    if (count > this.freeList.length) {
      throw new PoolExhaustedError(this.name, count, this.freeList.length, this.capacity);
    }
  }

  private reclaim(count: number): void {
    for (const reclaim of this.reclaimers) {
      if (this.freeList.length >= count) return;
      reclaim(this, count);
    }
  }

  allocate(): number {
    if (this.freeList.length === 0) this.reclaim(1);
    const slot = this.freeList.pop();
    if (slot === undefined) throw new PoolExhaustedError(this.name, 1, 0, this.capacity);
    this.refs[slot] = 1;
    return slot;
  }

  allocateMany(count: number): number[] {
    this.ensureFree(count);
    const slots: number[] = [];
    for (let i = 0; i < count; i++) slots.push(this.allocate());
    return slots;
  }

  /** Another holder of an allocated slot (fork). */
  retain(slot: number): void {
    this.check(slot);
    if (this.cached[slot] && this.refs[slot] === 1) this.cachedOnly--;
    this.refs[slot]++;
  }

  /** Drops one holder; returns true when the slot went back to the free list. */
  release(slot: number): boolean {
    this.check(slot);
    if (--this.refs[slot] === 0) {
      this.freeList.push(slot);
      return true;
    }
    if (this.cached[slot] && this.refs[slot] === 1) this.cachedOnly++;
    return false;
  }

  /** A prefix cache becomes a holder of an allocated slot (the only cache that holds it). */
  retainForCache(slot: number): void {
    this.check(slot);
    if (this.cached[slot]) throw internalError(`${this.name} pool: slot ${slot} is already held by a prefix cache`);
    this.retain(slot);
    this.cached[slot] = 1;
  }

  /** The prefix cache drops its hold; returns true when the slot went back to the free list. */
  releaseFromCache(slot: number): boolean {
    this.check(slot);
    if (!this.cached[slot]) throw internalError(`${this.name} pool: slot ${slot} is not held by a prefix cache`);
    if (this.refs[slot] === 1) this.cachedOnly--;
    this.cached[slot] = 0;
    return this.release(slot);
  }

  refCount(slot: number): number {
    return this.refs[slot] ?? 0;
  }

  usage(): PoolUsage {
    const used = this.used;
    return {
      name: this.name,
      capacity: this.capacity,
      used,
      free: this.free,
      bytesPerPage: this.bytesPerPage,
      usedBytes: used * this.bytesPerPage,
      freeBytes: this.free * this.bytesPerPage,
    };
  }

  private check(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity || this.refs[slot] === 0) {
      throw internalError(`${this.name} pool: slot ${slot} is not allocated`);
    }
  }
}
