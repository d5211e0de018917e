import type { Backend, ChunkAttentionArgs, Tensor } from './backend.js';

/**
 * Each row's causal page list for a chunk of one sequence: the pages up to its own
 * position, the last one cut at the position (Backend.pagedAttention's tables, one
 * list a row). Built straight into typed arrays: a 4096-row chunk at 30k tokens has
 * about four million entries per layer, and per-row lists of plain arrays took
 * seconds a chunk.
 */
export function causalPageTable(backend: Backend, slots: ArrayLike<number>, start: number, count: number, pageSize: number) {
  const maxPages = Math.ceil((start + count) / pageSize);
  const all = Int32Array.from({ length: maxPages }, (_, i) => slots[i]);
  const table = new Int32Array(count * maxPages);
  const counts = new Int32Array(count);
  const lasts = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    const p = start + r;
    const n = Math.floor(p / pageSize) + 1;
    table.set(all.subarray(0, n), r * maxPages);
    counts[r] = n;
    lasts[r] = (p % pageSize) + 1;
  }
  return {
    pageTable: backend.fromArray(table, [count, 1, maxPages], 'i32'),
    pageCounts: backend.fromArray(counts, [count, 1], 'i32'),
    lastPageLens: backend.fromArray(lasts, [count, 1], 'i32'),
  };
}

/**
 * A prefill chunk's causal attention over its sequence's pages: the backend's own
 * operation where it has one (Backend.chunkAttention), else paged attention with
 * each row's causal list. `slots` are the sequence's slots as numbers, for the latter.
 */
export function chunkAttention(backend: Backend, args: Omit<ChunkAttentionArgs, 'pageSlots'>, slots: readonly number[]): Tensor {
  const count = args.q.shape[0];
  const pages = Math.ceil((args.start + count) / args.storage.geometry.pageSize);
  if (backend.chunkAttention) {
    return backend.chunkAttention({ ...args, pageSlots: backend.fromArray(slots.slice(0, pages), [pages], 'i32') });
  }
  const table = causalPageTable(backend, slots, args.start, count, args.storage.geometry.pageSize);
  return backend.pagedAttention({ q: args.q, storage: args.storage, ...table, scale: args.scale }).out;
}
