import type { Backend, Tensor } from './backend.js';
import { ArkvaleError, invalidArgument } from './errors.js';
import type { Communicator } from './parallel.js';

/*
 * Collectives between ranks in threads of one process (docs/DESIGN.md, "Tensor
 * parallelism"): every rank writes its values into its own slot of one
 * SharedArrayBuffer, waits at a barrier (Atomics), and reads every slot. Sums are taken
 * in float64 in rank order and rounded once, as InProcessGroup does, so every rank gets
 * the same values as one thread holding them all. A tensor larger than a slot goes in
 * pieces. A rank that fails marks the buffer broken, and the others' waits end with an
 * error instead of hanging.
 */

/** Control words: arrivals at the barrier, its generation, and the rank that broke (-1: none). */
const ARRIVED = 0;
const GENERATION = 1;
const BROKEN = 2;
const CONTROL_BYTES = 16;

/** The shared memory of a group of `size` ranks with slots of `slotFloats` f32 values each (default 1 M: 4 MB a rank). */
export function sharedMemoryGroup(size: number, slotFloats = 1 << 20): SharedArrayBuffer {
  if (!Number.isInteger(size) || size < 1) throw invalidArgument(`a group needs a whole number of ranks >= 1, got ${String(size)}`);
  if (!Number.isInteger(slotFloats) || slotFloats < 1) throw invalidArgument(`slots need at least one value, got ${String(slotFloats)}`);
  const shared = new SharedArrayBuffer(CONTROL_BYTES + size * slotFloats * 4);
  new Int32Array(shared, 0, 4)[BROKEN] = -1;
  return shared;
}

export class SharedMemoryCommunicator implements Communicator {
  private readonly control: Int32Array;
  private readonly slots: Float32Array[];
  private readonly slotFloats: number;

  constructor(
    shared: SharedArrayBuffer,
    readonly rank: number,
    readonly size: number,
    private readonly backend: Backend,
  ) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw invalidArgument(`rank ${String(rank)} is outside a group of ${size}`);
    this.slotFloats = (shared.byteLength - CONTROL_BYTES) / 4 / size;
    if (!Number.isInteger(this.slotFloats) || this.slotFloats < 1)
      throw invalidArgument(`a shared buffer of ${shared.byteLength} bytes does not hold ${size} slots`);
    this.control = new Int32Array(shared, 0, 4);
    this.slots = Array.from({ length: size }, (_, r) => new Float32Array(shared, CONTROL_BYTES + r * this.slotFloats * 4, this.slotFloats));
  }

  allReduceSum(t: Tensor): Tensor {
    const values = this.read(t, 'allReduceSum');
    const out = new Float32Array(values.length);
    for (let start = 0; start < values.length; start += this.slotFloats) {
      const n = Math.min(this.slotFloats, values.length - start);
      this.slots[this.rank].set(values.subarray(start, start + n));
      this.barrier();
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let r = 0; r < this.size; r++) sum += this.slots[r][i];
        out[start + i] = sum;
      }
      // Nobody writes the next piece before everyone has read this one.
      this.barrier();
    }
    return this.upload(out, t.shape, t);
  }

  allGather(t: Tensor): Tensor {
    if (t.shape.length !== 2) throw invalidArgument(`allGather takes [rows, cols] tensors, got [${t.shape.join(', ')}]`);
    const [rows, cols] = t.shape;
    if (cols > this.slotFloats) throw invalidArgument(`allGather: a row of ${cols} values exceeds the ${this.slotFloats} of a slot`);
    const values = this.read(t, 'allGather');
    const width = cols * this.size;
    const out = new Float32Array(rows * width);
    const rowsPerPiece = Math.floor(this.slotFloats / cols);
    for (let first = 0; first < rows; first += rowsPerPiece) {
      const n = Math.min(rowsPerPiece, rows - first);
      this.slots[this.rank].set(values.subarray(first * cols, (first + n) * cols));
      this.barrier();
      for (let r = 0; r < this.size; r++) {
        for (let row = 0; row < n; row++) out.set(this.slots[r].subarray(row * cols, (row + 1) * cols), (first + row) * width + r * cols);
      }
      this.barrier();
    }
    return this.upload(out, [rows, width], t);
  }

  /** Marks the group broken (this rank failed): every rank waiting now or later gets an error. */
  breakGroup(): void {
    Atomics.compareExchange(this.control, BROKEN, -1, this.rank);
    Atomics.notify(this.control, GENERATION);
  }

  private barrier(): void {
    const generation = Atomics.load(this.control, GENERATION);
    if (Atomics.add(this.control, ARRIVED, 1) === this.size - 1) {
      Atomics.store(this.control, ARRIVED, 0);
      Atomics.add(this.control, GENERATION, 1);
      Atomics.notify(this.control, GENERATION);
      return;
    }
    while (Atomics.load(this.control, GENERATION) === generation) {
      const broken = Atomics.load(this.control, BROKEN);
      if (broken >= 0) throw new ArkvaleError('INTERNAL', `tensor-parallel rank ${broken} failed; rank ${this.rank} stops waiting for it at a collective`);
      Atomics.wait(this.control, GENERATION, generation, 200);
    }
  }

  private read(t: Tensor, op: string): Float32Array {
    if (t.dtype === 'i32') throw invalidArgument(`${op}: an i32 tensor; collectives here take floats`);
    const v = this.backend.readSync(t);
    return v instanceof Float32Array ? v : Float32Array.from(v);
  }

  private upload(values: Float32Array, shape: readonly number[], like: Tensor): Tensor {
    const b = this.backend;
    return like.dtype === 'f32' ? b.fromArray(values, shape) : b.fromBytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), shape, 'f32');
  }
}
