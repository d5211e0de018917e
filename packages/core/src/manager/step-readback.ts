import type { Backend, PendingRead, Tensor } from '../backend.js';
import { internalError } from '../errors.js';

/**
 * What a decode step's device decisions leave for the host, read back once: ArkVale's
 * recall plans (DeviceTables) and H2O's and TOVA's victims (TokenTables). Every layer
 * writes its batch's rows into one tensor, [numLayers * B] or [numLayers * B, width]
 * (layer l's batch at rows l * B), which the step reads with one copy after its last
 * layer; `settle` then replays the rows onto the host's view.
 */

/** One layer's rows of a step: rows [row, row + layers.length) of what `read` brings back, `width` values each. */
interface PendingRows<L> {
  readonly layers: readonly L[];
  readonly read: PendingRead;
  readonly width: number;
  readonly row: number;
}

/** One decode step's gatherer, made by `StepReadbacks.step` and finished after the step's last layer. */
export class StepReadback<L> {
  private tensor: Tensor | null = null;
  private width = 1;
  private readonly layers: { layers: readonly L[]; row: number }[] = [];

  constructor(
    private readonly owner: StepReadbacks<L>,
    private readonly numLayers: number,
    private readonly batch: number,
  ) {}

  /**
   * Makes the step's tensor now (`width` values a row; without a width, one value a row
   * in a tensor of one dimension) rather than at the first `into`: a decode step makes
   * it before its forward pass, so that a step replayed without its forward pass
   * (Backend.graphStep) still has it to read.
   */
  open(width?: number): void {
    if (this.tensor) return;
    const b = this.owner.backend;
    const rows = this.numLayers * this.batch;
    this.width = width ?? 1;
    const values = new Int32Array(rows * this.width).fill(this.owner.fill);
    this.tensor = b.keep(b.fromArray(values, width === undefined ? [rows] : [rows, width], 'i32'));
    this.owner.open(this);
  }

  /** Where layer `layer`'s rows go (the tensor is made on first use, see `open`), and whose they are. */
  into(layer: number, layers: readonly L[], width?: number): { tensor: Tensor; row: number } {
    this.open(width);
    if ((width ?? 1) !== this.width) throw internalError(`a step's decision rows are ${this.width} wide, not ${width ?? 1}`);
    const row = layer * this.batch;
    this.layers.push({ layers, row });
    return { tensor: this.tensor!, row };
  }

  /** The layers whose rows the step gathered: what a step replayed without its forward pass gathers again (`gatherAgain`). */
  get gathered(): readonly { readonly layers: readonly L[]; readonly row: number }[] {
    return this.layers;
  }

  /** Gathers what a recorded step's layers did (`gathered`), for a step whose forward pass did not run. */
  gatherAgain(recorded: readonly { readonly layers: readonly L[]; readonly row: number }[]): void {
    this.layers.push(...recorded);
  }

  /** @internal Starts the one read of the step's rows. */
  finish(): PendingRows<L>[] {
    if (!this.tensor) return [];
    const b = this.owner.backend;
    const read = b.readLater(this.tensor);
    b.dispose(this.tensor);
    this.tensor = null;
    return this.layers.map(({ layers, row }) => ({ layers, read, width: this.width, row }));
  }
}

/** The steps of one kind of device decision: gathered, being read, and replayed by `settle`. */
export class StepReadbacks<L> {
  private pending: PendingRows<L>[] = [];
  /** Steps whose rows are gathered but not read yet. */
  private readonly unfinished = new Set<StepReadback<L>>();

  /** `fill`: what a row holds before its layer writes it (what "nothing decided" reads as). */
  constructor(
    readonly backend: Backend,
    readonly fill: number,
  ) {}

  /** A decode step's gatherer. */
  step(numLayers: number, batch: number): StepReadback<L> {
    return new StepReadback(this, numLayers, batch);
  }

  /** @internal A step started gathering rows. */
  open(step: StepReadback<L>): void {
    this.unfinished.add(step);
  }

  /** Starts reading a step's rows, to replay once they are read. */
  finish(step: StepReadback<L>): void {
    this.unfinished.delete(step);
    this.pending.push(...step.finish());
  }

  /**
   * Hands every row read back to `replay` (its layer, the data, and where the row starts
   * in it), in the order the steps ran. `readyOnly`: only the steps whose read is on
   * the host already, up to the first that is not (nothing waits for the device).
   */
  settle(replay: (layer: L, data: Int32Array | Float32Array, at: number) => void, readyOnly = false): void {
    if (readyOnly && this.unfinished.size > 0) readyOnly = false;
    // A step cut short (its last layer never ran) is read now: correct, at the cost of a wait.
    for (const step of [...this.unfinished]) this.finish(step);
    if (this.pending.length === 0) return;
    let count = this.pending.length;
    if (readyOnly) {
      count = this.pending.findIndex((p) => p.read.ready?.() === false);
      if (count < 0) count = this.pending.length;
    }
    const pending = this.pending.slice(0, count);
    this.pending = this.pending.slice(count);
    // Layers of one step share one read: take its data once.
    const taken = new Map<PendingRead, Float32Array | Int32Array>();
    for (const { layers, read, width, row } of pending) {
      let data = taken.get(read);
      if (!data) taken.set(read, (data = read.get()));
      layers.forEach((layer, r) => replay(layer, data, (row + r) * width));
    }
  }
}
