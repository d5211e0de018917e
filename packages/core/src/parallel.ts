import type { Backend, Tensor } from './backend.js';
import { invalidArgument } from './errors.js';

/*
 * Tensor parallelism's collectives (docs/DESIGN.md, "Tensor parallelism"). A rank's
 * forward pass is written as a program that stops at each collective it needs and is
 * resumed with the result (`RankProgram`). Who answers is up to the runtime:
 *
 * - `runRank`: a runtime with one rank per thread or process (one worker per GPU)
 *   answers each collective at once with its `Communicator` (NCCL enqueues the
 *   all-reduce on the rank's stream and returns).
 * - `runLockstep`: one thread holds every rank and runs their programs to the same
 *   collective, then answers all of them with one group-wise call (`CollectiveGroup`):
 *   the in-process reference here, or NCCL with every rank's call inside one
 *   ncclGroupStart/End.
 *
 * A per-rank collective cannot run N ranks in one thread (rank 0 would need its sum
 * before rank 1 has computed its part), hence the programs.
 */

/** A collective a rank's program stops at: every rank of a group stops at the same ones, in the same order, with tensors of one shape. */
export type Collective = { readonly op: 'allReduceSum'; readonly t: Tensor } | { readonly op: 'allGather'; readonly t: Tensor };

/** A rank's work: runs to its next collective, is resumed with that collective's result on its backend, and returns its result. */
export type RankProgram<T> = Generator<Collective, T, Tensor>;

/**
 * One rank of a tensor-parallel group as it sees its collectives (the shape of an NCCL
 * communicator): every rank calls the same collectives in the same order. Results are
 * new tensors on the rank's backend; the argument stays the caller's.
 */
export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** The element-wise sum of every rank's `t` (the same shape and dtype on each rank). */
  allReduceSum(t: Tensor): Tensor;
  /** Every rank's `t` [rows, cols] side by side in rank order: [rows, size * cols]. */
  allGather(t: Tensor): Tensor;
}

/** The same collectives called once for all ranks from one thread: `ts[r]` is rank r's tensor, the result's [r] rank r's. */
export interface CollectiveGroup {
  readonly size: number;
  allReduceSum(ts: readonly Tensor[]): Tensor[];
  allGather(ts: readonly Tensor[]): Tensor[];
}

/** Runs one rank's program, answering each of its collectives at once with `comm` (none needed by a program that asks for none). */
export function runRank<T>(program: RankProgram<T>, comm?: Communicator): T {
  let step = program.next();
  while (!step.done) {
    const c = step.value;
    if (comm === undefined) throw invalidArgument(`a tensor-parallel rank's pass reached an ${c.op} without a communicator`);
    step = program.next(c.op === 'allReduceSum' ? comm.allReduceSum(c.t) : comm.allGather(c.t));
  }
  return step.value;
}

/**
 * Runs one program per rank in this thread, in lockstep: each rank in turn (rank order)
 * runs to its next collective; once all are there, `group` answers them together and
 * they go on. Returns each rank's result. Ranks that disagree on the collective, or
 * finish while others wait at one, are an error.
 */
export function runLockstep<T>(programs: readonly RankProgram<T>[], group: CollectiveGroup): T[] {
  if (programs.length !== group.size) throw invalidArgument(`${programs.length} rank programs for a group of ${group.size}`);
  let steps = programs.map((p) => p.next());
  for (;;) {
    const finished = steps.filter((s) => s.done).length;
    if (finished === steps.length) return steps.map((s) => s.value as T);
    if (finished > 0) {
      const waiting = steps.map((s, r) => (s.done ? -1 : r)).filter((r) => r >= 0);
      throw invalidArgument(`ranks ${waiting.join(', ')} wait at a collective that the other ranks of the group never reach`);
    }
    const cs = steps.map((s) => s.value as Collective);
    if (cs.some((c) => c.op !== cs[0].op)) throw invalidArgument(`ranks disagree on the collective: ${cs.map((c, r) => `rank ${r}: ${c.op}`).join(', ')}`);
    const ts = cs.map((c) => c.t);
    const results = cs[0].op === 'allReduceSum' ? group.allReduceSum(ts) : group.allGather(ts);
    steps = programs.map((p, r) => p.next(results[r]));
  }
}

/**
 * The reference collectives for N ranks held by one thread, each rank with its backend
 * (the same backend may serve several ranks). Sums are taken in float64 in rank order
 * and rounded once, so every rank gets the same values; results are in the argument's
 * dtype (the backend's for 16-bit backends). Everything goes through the host.
 */
export class InProcessGroup implements CollectiveGroup {
  readonly size: number;

  constructor(readonly backends: readonly Backend[]) {
    if (backends.length < 1) throw invalidArgument('a group needs at least one rank');
    this.size = backends.length;
  }

  allReduceSum(ts: readonly Tensor[]): Tensor[] {
    this.check(ts, 'allReduceSum');
    const sum = new Float64Array(elements(ts[0].shape));
    ts.forEach((t, r) => {
      const values = this.backends[r].readSync(t);
      for (let i = 0; i < sum.length; i++) sum[i] += values[i];
    });
    const out = Float32Array.from(sum);
    return ts.map((t, r) => this.upload(r, out, t.shape, t));
  }

  allGather(ts: readonly Tensor[]): Tensor[] {
    this.check(ts, 'allGather');
    const [rows, cols] = ts[0].shape;
    if (ts[0].shape.length !== 2) throw invalidArgument(`allGather takes [rows, cols] tensors, got [${ts[0].shape.join(', ')}]`);
    const width = cols * this.size;
    const out = new Float32Array(rows * width);
    ts.forEach((t, r) => {
      const values = this.backends[r].readSync(t);
      for (let row = 0; row < rows; row++) out.set(values.subarray(row * cols, (row + 1) * cols), row * width + r * cols);
    });
    return ts.map((t, r) => this.upload(r, out, [rows, width], t));
  }

  private check(ts: readonly Tensor[], op: string): void {
    if (ts.length !== this.size) throw invalidArgument(`${op}: ${ts.length} tensors for a group of ${this.size}`);
    const shape = ts[0].shape.join(', ');
    ts.forEach((t, r) => {
      if (t.shape.join(', ') !== shape || t.dtype !== ts[0].dtype) {
        throw invalidArgument(`${op}: rank ${r} gives ${t.dtype} [${t.shape.join(', ')}], rank 0 ${ts[0].dtype} [${shape}]`);
      }
      if (t.dtype === 'i32') throw invalidArgument(`${op}: rank ${r} gives an i32 tensor; collectives here take floats`);
    });
  }

  private upload(rank: number, values: Float32Array, shape: readonly number[], like: Tensor): Tensor {
    const b = this.backends[rank];
    // f32 stays f32; a 16-bit tensor comes back in the backend's dtype (fromBytes converts).
    return like.dtype === 'f32' ? b.fromArray(values, shape) : b.fromBytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), shape, 'f32');
  }
}

function elements(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}
