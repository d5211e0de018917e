import { PAGE_TABLE_FIELDS as F, type Backend, type Tensor } from '../backend.js';
import type { PageLayer } from './layer-state.js';
import { QueuedWrites } from './queued-writes.js';
import { type StepReadback, StepReadbacks } from './step-readback.js';

/** Every device-selecting layer's plans of one decode step, read back with one copy ([numLayers * B, width]; see step-readback.ts). */
export type StepPlans = StepReadback<PageLayer>;

/** What replaying a plan does to the host's view of a page it moves off the device. */
export interface PlanReplay {
  /** The victim leaves the device (its backup complete); counted as an eviction. */
  detach(layer: PageLayer, page: number): void;
  /** One page recalled. */
  recalled(): void;
}

/**
 * The device page tables of the layers that select on the device: one row per
 * (sequence, layer), [slot, digest row, host slot] per logical page (see
 * PAGE_TABLE_FIELDS). The host's `pages` stay the authority between steps: a row is
 * uploaded whole when it is not in sync, kept in sync during steps by small scatters
 * of what the host changes (new pages, seals), and the device's own changes (recalls)
 * come back as plans that `settle` replays onto `pages` once the step is read anyway.
 */
export class DeviceTables {
  private tables: Tensor | null = null;
  private rowCapacity = 0;
  private pageCapacity = 0;
  private nextRow = 0;
  private readonly freeRows: number[] = [];
  /** Rows that own a place in the current tensor; a regrown tensor starts with none in sync. */
  private readonly holders = new Set<PageLayer>();
  private readonly writes = new QueuedWrites();
  /** Plans start as rows of zeros: no recall. */
  private readonly plans: StepReadbacks<PageLayer>;
  /** Bumped when the tensor is made again (a graphed step reads it at its address: KvCache.graphKey names this). */
  version = 0;

  constructor(private readonly backend: Backend) {
    this.plans = new StepReadbacks(backend, 0);
  }

  /** The tables tensor, grown (and every row marked out of sync) so that `pages` pages fit a row. */
  tensor(pages: number): Tensor {
    if (!this.tables || pages > this.pageCapacity || this.nextRow > this.rowCapacity) this.grow(pages);
    return this.tables!;
  }

  /** Gives the layer a row (kept until `release`). */
  rowOf(layer: PageLayer): number {
    if (layer.deviceRow < 0) {
      layer.deviceRow = this.freeRows.pop() ?? this.nextRow++;
      layer.rowSynced = false;
      this.holders.add(layer);
    }
    return layer.deviceRow;
  }

  /** Queues the whole row of a layer (its pages 0..n-1) for the next flush. */
  upload(layer: PageLayer): void {
    layer.pages.forEach((_, p) => this.writePage(layer, p));
    layer.rowSynced = true;
  }

  /** Queues page p's three fields as the host has them. */
  writePage(layer: PageLayer, p: number): void {
    const e = layer.pages[p];
    const base = layer.deviceRow * 3 * this.pageCapacity + p;
    this.writes.set(base + F.slot * this.pageCapacity, e.slot);
    this.writes.set(base + F.digest * this.pageCapacity, e.digest);
    this.writes.set(base + F.host * this.pageCapacity, e.host);
  }

  /** Whether writes wait for the next flush (a step's forward pass would apply them). */
  get queued(): boolean {
    return this.writes.size > 0;
  }

  /** Applies the queued writes with one scatter. */
  flush(): void {
    this.writes.flush(this.backend, this.tables);
  }

  /** A decode step's plan gatherer; with `width`, its tensor is made now (StepReadback.open). */
  stepPlans(numLayers: number, batch: number, width?: number): StepPlans {
    const step = this.plans.step(numLayers, batch);
    if (width !== undefined) step.open(width);
    return step;
  }

  /** Starts reading a step's plans, to replay once they are read. */
  finish(step: StepPlans): void {
    this.plans.finish(step);
  }

  /**
   * Replays every plan read back onto the host's pages: the host's view is exact again.
   * `readyOnly`: only the plans on the host already (StepReadbacks.settle).
   */
  settle(replay: PlanReplay, readyOnly = false): void {
    this.plans.settle((layer, data, base) => {
      for (let j = 0; j < data[base]; j++) {
        const page = layer.pages[data[base + 1 + 2 * j]];
        const victim = data[base + 2 + 2 * j];
        page.slot = layer.pages[victim].slot;
        replay.detach(layer, victim);
        replay.recalled();
      }
    }, readyOnly);
  }

  /** The layer's row no longer mirrors its pages (they changed outside a device step). */
  invalidate(layer: PageLayer): void {
    layer.rowSynced = false;
  }

  /** Returns the layer's row (its sequence is freed or forked away from it). */
  release(layer: PageLayer): void {
    if (layer.deviceRow < 0) return;
    this.holders.delete(layer);
    this.freeRows.push(layer.deviceRow);
    layer.deviceRow = -1;
    layer.rowSynced = false;
  }

  dispose(): void {
    if (this.tables) this.backend.dispose(this.tables);
    this.tables = null;
  }

  private grow(pages: number): void {
    this.rowCapacity = Math.max(16, this.rowCapacity, 2 ** Math.ceil(Math.log2(Math.max(1, this.nextRow))));
    this.pageCapacity = Math.max(64, this.pageCapacity, 2 ** Math.ceil(Math.log2(pages)));
    if (this.tables) this.backend.dispose(this.tables);
    this.version++;
    // Not read before every row in use is uploaded; -1 everywhere keeps stray reads harmless.
    const fresh = new Int32Array(this.rowCapacity * 3 * this.pageCapacity).fill(-1);
    this.tables = this.backend.keep(this.backend.fromArray(fresh, [this.rowCapacity, 3, this.pageCapacity], 'i32'));
    this.writes.clear();
    for (const layer of this.holders) layer.rowSynced = false;
  }
}
