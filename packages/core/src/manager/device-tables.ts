import { PAGE_TABLE_FIELDS as F, type Backend, type PendingRead, type Tensor } from '../backend.js';
import type { PageLayer } from './layer-state.js';

/** A step's selection plans of one layer: rows [row, row + layers.length) of what `read` brings back. */
interface PendingPlans {
  readonly layers: readonly PageLayer[];
  readonly read: PendingRead;
  readonly width: number;
  readonly row: number;
}

/**
 * Every device-selecting layer's plans of one decode step, gathered in one tensor so
 * that the step reads them back with one copy: [numLayers * B, width], layer l's batch
 * at rows l * B. Made by `DeviceTables.stepPlans`, finished after the last layer.
 */
export class StepPlans {
  private tensor: Tensor | null = null;
  private width = 0;
  private readonly layers: { layers: readonly PageLayer[]; row: number }[] = [];

  constructor(
    private readonly owner: DeviceTables,
    private readonly backend: Backend,
    private readonly numLayers: number,
    private readonly batch: number,
  ) {}

  /** Where layer l's plans go (the tensor is made on first use), and remembers whose they are. */
  into(layer: number, width: number, layers: readonly PageLayer[]): { tensor: Tensor; row: number } {
    if (!this.tensor) {
      this.width = width;
      this.tensor = this.backend.keep(this.backend.fromArray(new Int32Array(this.numLayers * this.batch * width), [this.numLayers * this.batch, width], 'i32'));
      this.owner.open(this);
    }
    const row = layer * this.batch;
    this.layers.push({ layers, row });
    return { tensor: this.tensor, row };
  }

  /** Starts the one read of the step's plans (after its last layer; `settle` finishes a step cut short). */
  finish(): PendingPlans[] {
    if (!this.tensor) return [];
    const read = this.backend.readLater(this.tensor);
    this.backend.dispose(this.tensor);
    this.tensor = null;
    return this.layers.map(({ layers, row }) => ({ layers, read, width: this.width, row }));
  }
}

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
  private readonly writes = new Map<number, number>();
  private pending: PendingPlans[] = [];
  /** Steps whose plans are gathered but not read yet. */
  private readonly unfinished = new Set<StepPlans>();

  constructor(private readonly backend: Backend) {}

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

  /** Applies the queued writes with one scatter. */
  flush(): void {
    if (this.writes.size === 0 || !this.tables) return;
    const updates = new Int32Array(2 * this.writes.size);
    let i = 0;
    for (const [index, value] of this.writes) {
      updates[i++] = index;
      updates[i++] = value;
    }
    this.writes.clear();
    this.backend.scatterI32(this.tables, this.backend.fromArray(updates, [updates.length / 2, 2], 'i32'));
  }

  /** A decode step's plan gatherer. */
  stepPlans(numLayers: number, batch: number): StepPlans {
    return new StepPlans(this, this.backend, numLayers, batch);
  }

  /** @internal A step started gathering plans. */
  open(step: StepPlans): void {
    this.unfinished.add(step);
  }

  /** Starts reading a step's plans, to replay once they are read. */
  finish(step: StepPlans): void {
    this.unfinished.delete(step);
    this.pending.push(...step.finish());
  }

  /** Replays every plan read back onto the host's pages: the host's view is exact again. */
  settle(replay: PlanReplay): void {
    // A step cut short (its last layer never ran) is read now: correct, at the cost of a wait.
    for (const step of [...this.unfinished]) this.finish(step);
    if (this.pending.length === 0) return;
    const pending = this.pending;
    this.pending = [];
    // Layers of one step share one read: take its data once.
    const taken = new Map<PendingRead, Float32Array | Int32Array>();
    for (const { layers, read, width, row } of pending) {
      let data = taken.get(read);
      if (!data) taken.set(read, (data = read.get()));
      layers.forEach((layer, r) => {
        const base = (row + r) * width;
        for (let j = 0; j < data[base]; j++) {
          const page = layer.pages[data[base + 1 + 2 * j]];
          const victim = data[base + 2 + 2 * j];
          page.slot = layer.pages[victim].slot;
          replay.detach(layer, victim);
          replay.recalled();
        }
      });
    }
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
    // Not read before every row in use is uploaded; -1 everywhere keeps stray reads harmless.
    const fresh = new Int32Array(this.rowCapacity * 3 * this.pageCapacity).fill(-1);
    this.tables = this.backend.keep(this.backend.fromArray(fresh, [this.rowCapacity, 3, this.pageCapacity], 'i32'));
    this.writes.clear();
    for (const layer of this.holders) layer.rowSynced = false;
  }
}
