import type { CudaAddon } from '../native.js';
import type { StepGraphs } from './step-graphs.js';

/** Buffers up to this size are kept for reuse: a decode step's activations, page lists and workspaces. */
const MAX_POOLED_BYTES = 4 << 20;
/** At most this much device memory waits in the pool. */
const POOL_BUDGET = 256 << 20;

/**
 * Small device buffers kept in JavaScript for reuse. A decode step makes and frees
 * ~900 tensors of the same few sizes; handing them back here instead of to the addon's
 * caching allocator saves two N-API calls per tensor. Reuse is safe for the same reason
 * the addon's is: every holder runs on the compute stream, in order.
 */
export class BufferPool {
  private readonly free = new Map<number, bigint[]>();
  private pooledBytes = 0;

  constructor(
    private readonly addon: CudaAddon,
    /** During a graphed step, allocations are the graph's (and come back to it). */
    private readonly graphs?: StepGraphs,
  ) {
    graphs?.returnBuffersTo((ptr, size) => this.release(ptr, size));
  }

  /** A block of at least `bytes` (>= 16): reused when one of its size class waits here. */
  alloc(bytes: number, what: string): bigint {
    const size = sizeClass(bytes);
    if (this.graphs?.inStep) return this.graphs.alloc(size, () => this.take(size, what));
    return this.take(size, what);
  }

  release(ptr: bigint, bytes: number): void {
    if (this.graphs?.release(ptr)) return;
    const size = sizeClass(bytes);
    if (size > MAX_POOLED_BYTES || this.pooledBytes + size > POOL_BUDGET) {
      this.addon.free(ptr);
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(ptr);
    this.pooledBytes += size;
  }

  private take(size: number, what: string): bigint {
    const reused = this.free.get(size)?.pop();
    if (reused !== undefined) {
      this.pooledBytes -= size;
      return reused;
    }
    try {
      return this.addon.alloc(size, what);
    } catch (e) {
      if (this.pooledBytes === 0) throw e;
      // Out of memory, perhaps only because blocks wait here: give them back and try once more.
      this.trim();
      return this.addon.alloc(size, what);
    }
  }

  /** Returns every waiting block to the addon (before reading its statistics, or when memory runs short). */
  trim(): void {
    for (const list of this.free.values()) for (const ptr of list) this.addon.free(ptr);
    this.free.clear();
    this.pooledBytes = 0;
  }

  /** Bytes waiting for reuse. */
  get bytes(): number {
    return this.pooledBytes;
  }
}

/** Sizes round up to 256 bytes (the addon's granularity), at least 16. */
function sizeClass(bytes: number): number {
  return Math.max(256, Math.ceil(bytes / 256) * 256);
}
