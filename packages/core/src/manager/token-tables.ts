import { tokenTableLayout, type Backend, type Tensor, type TokenTableLayout } from '../backend.js';
import type { TokenLayer } from './layer-state.js';
import { QueuedWrites } from './queued-writes.js';
import { type StepReadback, StepReadbacks } from './step-readback.js';

/** Every token layer's victims of one decode step (-1: none), read back with one copy ([numLayers * B]; see step-readback.ts). */
export type StepVictims = StepReadback<TokenLayer>;

/**
 * The token-cell tables of token-level layers that decide on the device (H2O, TOVA):
 * one row per (sequence, layer), laid out as `tokenTableLayout` says (free cell, page
 * slots, positions, score bits). The host uploads a row whole when it is not in sync
 * and, during steps, writes what it alone knows (a token placed in a new cell, a new
 * page); the device places tokens in free cells, keeps the scores and chooses the
 * victims, which come back after the step (`settle`) so that the host's cells, free
 * cell and counters stay exact. The scores stay on the device: the host reads them
 * (`pullScores`) only where it needs them, outside the device path.
 */
export class TokenTables {
  readonly layout: TokenTableLayout;
  private tables: Tensor | null = null;
  private rowCapacity = 0;
  private nextRow = 0;
  private readonly freeRows: number[] = [];
  private readonly writes = new QueuedWrites();
  /** Bumped when the tensor is made again (a graphed step reads it at its address: KvCache.graphKey names this). */
  version = 0;
  /** Victims start as -1: no eviction. */
  private readonly victims: StepReadbacks<TokenLayer>;

  constructor(
    private readonly backend: Backend,
    readonly pages: number,
    readonly pageSize: number,
  ) {
    this.layout = tokenTableLayout(pages, pageSize);
    this.victims = new StepReadbacks(backend, -1);
  }

  /** The tables tensor, grown (keeping every row's contents: the device's scores live only there) to hold every row given out. */
  tensor(): Tensor {
    if (!this.tables || this.nextRow > this.rowCapacity) this.grow();
    return this.tables!;
  }

  /** Gives the layer a row (kept until `release`). */
  rowOf(layer: TokenLayer): number {
    if (layer.deviceRow < 0) {
      layer.deviceRow = this.freeRows.pop() ?? this.nextRow++;
      layer.rowSynced = false;
    }
    return layer.deviceRow;
  }

  /** Queues the whole row as the host has it (every field, so nothing of an earlier holder stays). */
  upload(layer: TokenLayer): void {
    const L = this.layout;
    const base = layer.deviceRow * L.width;
    const bits = new Int32Array(layer.scores.buffer, layer.scores.byteOffset, layer.scores.length);
    this.writes.set(base + L.free, layer.freeCell);
    for (let p = 0; p < this.pages; p++) this.writes.set(base + L.slots + p, layer.slots[p] ?? -1);
    for (let c = 0; c < L.cells; c++) {
      const used = c < layer.filled;
      this.writes.set(base + L.positions + c, used ? layer.positions[c] : -1);
      this.writes.set(base + L.scores + c, used ? bits[c] : 0);
    }
    layer.rowSynced = true;
  }

  /** Queues a new token's cell (its position, score 0) and, when it starts a page, that page's slot. */
  writeFreshCell(layer: TokenLayer, cell: number): void {
    const L = this.layout;
    const base = layer.deviceRow * L.width;
    this.writes.set(base + L.positions + cell, layer.positions[cell]);
    this.writes.set(base + L.scores + cell, 0);
    if (cell % this.pageSize === 0) this.writes.set(base + L.slots + cell / this.pageSize, layer.slots[cell / this.pageSize]);
  }

  /** Applies the queued writes with one scatter. */
  flush(): void {
    this.writes.flush(this.backend, this.tables);
  }

  /**
   * Brings the host's scores of a row in sync up to date (a read, so never inside a
   * device step): a fork copies them, and the host path decides by them.
   */
  pullScores(layer: TokenLayer): void {
    if (!layer.rowSynced || !this.tables) return;
    const L = this.layout;
    const slice = this.backend.sliceRows(this.tables, layer.deviceRow, 1);
    const row = this.backend.readSync(slice);
    this.backend.dispose(slice);
    const bits = new Float32Array(row.buffer, row.byteOffset + L.scores * 4, L.cells);
    layer.scores.set(bits.subarray(0, layer.filled));
  }

  /** The host takes the row over: its scores are read back, and the row no longer mirrors the layer (uploaded whole when next used). */
  toHost(layer: TokenLayer): void {
    this.pullScores(layer);
    layer.rowSynced = false;
  }

  /** A decode step's victim gatherer; with `open`, its tensor is made now (StepReadback.open). */
  stepVictims(numLayers: number, batch: number, open = false): StepVictims {
    const step = this.victims.step(numLayers, batch);
    if (open) step.open();
    return step;
  }

  /** Whether writes wait for the next flush (a step's forward pass would apply them). */
  get queued(): boolean {
    return this.writes.size > 0;
  }

  /** Starts reading a step's victims, to replay once they are read. */
  finish(step: StepVictims): void {
    this.victims.finish(step);
  }

  /** Replays every victim read back onto the host's cells (freed, the next token's cell); `evicted` counts each. */
  settle(evicted: () => void): void {
    this.victims.settle((layer, data, at) => {
      const cell = data[at];
      if (cell < 0) return;
      layer.positions[cell] = -1;
      layer.scores[cell] = 0;
      layer.freeCell = cell;
      evicted();
    });
  }

  /** Returns the layer's row (its sequence is freed). */
  release(layer: TokenLayer): void {
    if (layer.deviceRow < 0) return;
    this.freeRows.push(layer.deviceRow);
    layer.deviceRow = -1;
    layer.rowSynced = false;
  }

  dispose(): void {
    if (this.tables) this.backend.dispose(this.tables);
    this.tables = null;
  }

  private grow(): void {
    const capacity = Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(1, this.nextRow))));
    const fresh = this.backend.fromArray(
      new Int32Array((capacity - this.rowCapacity) * this.layout.width).fill(-1),
      [capacity - this.rowCapacity, this.layout.width],
      'i32',
    );
    const old = this.tables;
    // Rows in sync hold scores the host does not have: they move with the tensor.
    this.tables = this.backend.keep(old ? this.backend.concatRows([old, fresh]) : fresh);
    if (old) {
      this.backend.dispose(old);
      this.backend.dispose(fresh);
    }
    this.rowCapacity = capacity;
    this.version++;
  }
}
