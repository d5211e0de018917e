import type { Backend, Tensor } from '../backend.js';

/**
 * Writes the host queues into a device table (by flat i32 index; a later write to the
 * same index wins), applied with one `scatterI32`: DeviceTables' and TokenTables' rows
 * are kept in sync this way during steps.
 */
export class QueuedWrites {
  private readonly writes = new Map<number, number>();

  set(index: number, value: number): void {
    this.writes.set(index, value);
  }

  /** Writes waiting for the next flush. */
  get size(): number {
    return this.writes.size;
  }

  clear(): void {
    this.writes.clear();
  }

  /** Applies the queued writes to `target` with one scatter (none without a target or a write). */
  flush(backend: Backend, target: Tensor | null): void {
    if (this.writes.size === 0 || !target) return;
    const updates = new Int32Array(2 * this.writes.size);
    let i = 0;
    for (const [index, value] of this.writes) {
      updates[i++] = index;
      updates[i++] = value;
    }
    this.writes.clear();
    backend.scatterI32(target, backend.fromArray(updates, [updates.length / 2, 2], 'i32'));
  }
}
