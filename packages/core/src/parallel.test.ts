import { describe, expect, it } from 'vitest';
import type { Tensor } from './backend.js';
import { InProcessGroup, runLockstep, runRank, type Communicator, type RankProgram } from './parallel.js';
import { ReferenceBackend } from './reference/reference-backend.js';

describe('the in-process reference collectives', () => {
  // One backend per rank, as on a machine with one GPU per rank.
  const backends = [new ReferenceBackend(), new ReferenceBackend(), new ReferenceBackend()];
  const group = new InProcessGroup(backends);
  const read = (r: number, t: Tensor) => Array.from(backends[r].readSync(t));

  it('all-reduce: every rank gets the sum of every rank, in float64 in rank order, on its own backend', () => {
    const parts = [
      [1, 2, 3, 4, 5, 6],
      [10, 20, 30, 40, 50, 60],
      [100, 200, 300, 400, 500, 600],
    ].map((v, r) => backends[r].fromArray(v, [2, 3]));
    const sums = group.allReduceSum(parts);
    sums.forEach((t, r) => {
      expect(t.shape).toEqual([2, 3]);
      expect(t.dtype).toBe('f32');
      expect(read(r, t)).toEqual([111, 222, 333, 444, 555, 666]);
    });
    // Inputs stay as they were.
    expect(read(1, parts[1])).toEqual([10, 20, 30, 40, 50, 60]);
    // f64 then one rounding: 1 + 2^-24 + 2^-24 is 1 + 2^-23 (float32 left to right would give 1).
    const tiny = 2 ** -24;
    const [s] = group.allReduceSum([backends[0].fromArray([1], [1]), backends[1].fromArray([tiny], [1]), backends[2].fromArray([tiny], [1])]);
    expect(read(0, s)[0]).toBe(1 + 2 ** -23);
  });

  it('all-gather: the ranks columns side by side, rank 0 first', () => {
    const parts = [0, 1, 2].map((r) => backends[r].fromArray([r, r + 0.5, -r, -r - 0.5], [2, 2]));
    const out = group.allGather(parts);
    for (let r = 0; r < 3; r++) {
      expect(out[r].shape).toEqual([2, 6]);
      expect(read(r, out[r])).toEqual([0, 0.5, 1, 1.5, 2, 2.5, -0, -0.5, -1, -1.5, -2, -2.5]);
    }
  });

  it('refuses tensors that differ between ranks, the wrong number of them, and integers', () => {
    const b = backends[0];
    expect(() => group.allReduceSum([b.fromArray([1, 2], [2]), b.fromArray([1, 2], [1, 2]), b.fromArray([1, 2], [2])])).toThrow(/rank 1 gives f32 \[1, 2\]/);
    expect(() => group.allReduceSum([b.fromArray([1], [1])])).toThrow(/1 tensors for a group of 3/);
    expect(() => group.allGather([0, 1, 2].map(() => b.fromArray([1], [1], 'i32')))).toThrow(/i32/);
    expect(() => group.allGather([0, 1, 2].map(() => b.fromArray([1, 2], [2])))).toThrow(/\[rows, cols\]/);
    expect(() => new InProcessGroup([])).toThrow(/at least one rank/);
  });

  /** A rank's program: doubles its input, all-reduces, adds its rank, all-gathers. */
  function* program(b: ReferenceBackend, rank: number, x: number): RankProgram<Tensor> {
    const sum = yield { op: 'allReduceSum', t: b.fromArray([2 * x], [1, 1]) };
    return yield { op: 'allGather', t: b.fromArray([b.readSync(sum)[0] + rank], [1, 1]) };
  }

  it('runs every rank in lockstep to the same collectives, and one rank alone with a communicator', () => {
    const out = runLockstep(
      [0, 1, 2].map((r) => program(backends[r], r, r + 1)),
      group,
    );
    // 2 + 4 + 6 = 12, then 12 + rank gathered.
    for (let r = 0; r < 3; r++) expect(read(r, out[r])).toEqual([12, 13, 14]);
    // A per-rank communicator answers each collective at once (here: a group of one).
    const b = backends[0];
    const alone: Communicator = {
      rank: 0,
      size: 1,
      allReduceSum: (t) => b.fromArray(b.readSync(t), t.shape),
      allGather: (t) => b.fromArray(b.readSync(t), t.shape),
    };
    expect(read(0, runRank(program(b, 0, 5), alone))).toEqual([10]);
    expect(() => runRank(program(b, 0, 5))).toThrow(/allReduceSum without a communicator/);
  });

  it('refuses ranks that disagree on the collective or stop early', () => {
    const b = backends[0];
    function* reduceThenStop(): RankProgram<number> {
      yield { op: 'allReduceSum', t: b.fromArray([1], [1, 1]) };
      return 0;
    }
    function* gather(): RankProgram<number> {
      yield { op: 'allGather', t: b.fromArray([1], [1, 1]) };
      return 0;
    }
    function* twice(): RankProgram<number> {
      yield { op: 'allReduceSum', t: b.fromArray([1], [1, 1]) };
      yield { op: 'allReduceSum', t: b.fromArray([1], [1, 1]) };
      return 0;
    }
    expect(() => runLockstep([reduceThenStop(), gather(), reduceThenStop()], group)).toThrow(/rank 0: allReduceSum, rank 1: allGather/);
    expect(() => runLockstep([reduceThenStop(), twice(), reduceThenStop()], group)).toThrow(/ranks 1 wait at a collective/);
    expect(() => runLockstep([reduceThenStop()], group)).toThrow(/1 rank programs for a group of 3/);
  });
});
