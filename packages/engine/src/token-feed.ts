import { internalError, type Backend, type PendingRead, type Tensor } from '@arkvale/core';
import type { Job } from './job.js';

/** A step whose tokens stay on the device: its rows' jobs, and the read of their tokens begun. */
export interface HeldStep {
  /** Whose token each row is (StepResult.jobs). */
  readonly jobs: readonly Job[];
  readonly read: PendingRead;
}

/**
 * Tokens of a decode step kept on the device for the next step to feed
 * (EngineConfig.overlapSteps; docs/DESIGN.md, "Overlapped decode steps"). A step that
 * holds its tokens writes them (drawRows) into one tensor and starts reading them back.
 * The next step of the same jobs in the same order, or of some of them (one whose
 * request ended, or was preempted, drops out), reads its token ids from that tensor
 * (`tokensFor`), so it is issued before the host waits for them: the device runs it
 * while the host delivers the held tokens. The tensor keeps one address while its row
 * count does, so a step replayed as a graph reads it too.
 */
export class TokenFeed {
  private feed: Tensor | null = null;
  private held: (HeldStep & { readonly decoding: readonly Job[] }) | null = null;

  constructor(private readonly backend: Backend) {}

  /** Whether a step decoding `decoding` (in this order) can take its tokens from the held step. */
  feeds(decoding: readonly Job[]): boolean {
    return decoding.length > 0 && this.rowsOf(decoding) !== null;
  }

  /**
   * The held tokens of `decoding`'s jobs, i32 [decoding.length], in its order: the held
   * tensor, narrowed on the device to their rows when some of the held step's jobs
   * dropped out (the narrowed tensor is then the one kept, for the steps after).
   */
  tokensFor(decoding: readonly Job[]): Tensor {
    const rows = this.rowsOf(decoding);
    if (!this.feed || !rows || rows.length === 0) throw internalError('TokenFeed: no tokens are held for these jobs');
    if (rows.length === this.feed.shape[0]) return this.feed;
    const b = this.backend;
    // Work already issued that reads the old tensor runs before its memory is reused (a GPU's stream order).
    const narrowed = b.keep(b.gatherRows(this.feed, b.fromArray(rows, [rows.length], 'i32')));
    b.dispose(this.feed);
    this.feed = narrowed;
    return narrowed;
  }

  /** The held step's jobs (none when nothing is held). */
  get heldJobs(): readonly Job[] {
    return this.held?.jobs ?? [];
  }

  /** For each job of `decoding`, its row in the held step, when each has one and in the same order; null otherwise. */
  private rowsOf(decoding: readonly Job[]): number[] | null {
    const held = this.held?.decoding;
    if (!held) return null;
    const rows: number[] = [];
    let row = 0;
    for (const job of decoding) {
      while (row < held.length && held[row] !== job) row++;
      if (row === held.length) return null;
      rows.push(row++);
    }
    return rows;
  }

  /**
   * Keeps a decode step's tokens, i32 `ids` (a row per job of `jobs`, the step of
   * `decoding`), on the device, and begins reading them. Returns the step held before,
   * whose tokens the caller delivers.
   */
  hold(ids: Tensor, decoding: readonly Job[], jobs: readonly Job[]): HeldStep | null {
    const b = this.backend;
    if (!b.copyInto) throw internalError('TokenFeed: the backend cannot copy into a tensor (Backend.copyInto)');
    const rows = jobs.length;
    if (this.feed?.shape[0] !== rows) {
      // Work already issued that reads the old tensor runs before its memory is reused (a GPU's stream order).
      if (this.feed) b.dispose(this.feed);
      this.feed = b.keep(b.fromArray(new Int32Array(rows), [rows], 'i32'));
    }
    b.copyInto(this.feed, ids);
    const previous = this.take();
    this.held = { decoding: [...decoding], jobs: [...jobs], read: b.readLater(ids) };
    return previous;
  }

  /** The held step, no longer held (its tokens are read with `read.get()`). */
  take(): HeldStep | null {
    const h = this.held;
    this.held = null;
    return h;
  }

  dispose(): void {
    if (this.feed) this.backend.dispose(this.feed);
    this.feed = null;
    this.held = null;
  }
}
