import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { InProcessGroup } from './parallel.js';
import { ReferenceBackend } from './reference/reference-backend.js';
import { SharedMemoryCommunicator, sharedMemoryGroup } from './shared-memory-communicator.js';

/*
 * Ranks in threads: rank 0 here, the others in worker threads (each with its own
 * reference backend), meeting at the shared buffer's barrier. Their results must be the
 * in-process group's, bit for bit, also when a tensor goes through the slots in pieces.
 */

/** Rank r's values: [5, 6] floats, the same in every thread. */
const valuesOf = (r: number) => Array.from({ length: 30 }, (_, i) => Math.sin(r * 31 + i) * 10 ** ((i % 5) - 2));

/** Starts ranks 1 to size-1 in threads; each runs `script` (its rank in `rank`, its communicator in `comm`) and posts what it returns. */
function ranksInThreads(shared: SharedArrayBuffer, size: number, script: string): Promise<unknown>[] {
  const core = new URL('../dist/index.js', import.meta.url).href;
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(core)}).then(({ ReferenceBackend, SharedMemoryCommunicator }) => {
      const { shared, rank, size } = workerData;
      const b = new ReferenceBackend();
      const comm = new SharedMemoryCommunicator(shared, rank, size, b);
      const valuesOf = ${valuesOf.toString()};
      try { parentPort.postMessage((() => { ${script} })()); } catch (e) { parentPort.postMessage('error: ' + e.message); }
    });`;
  return Array.from({ length: size - 1 }, (_, i) => {
    const w = new Worker(code, { eval: true, workerData: { shared, rank: i + 1, size } });
    return new Promise((resolve, reject) => {
      w.once('message', (m) => {
        resolve(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
  });
}

describe('SharedMemoryCommunicator', () => {
  const b = new ReferenceBackend();
  const size = 3;
  const expected = new InProcessGroup([b, b, b]);
  const tensors = () => Array.from({ length: size }, (_, r) => b.fromArray(valuesOf(r), [5, 6]));

  it("gives every rank the in-process group's sum and gather, bit for bit, through slots smaller than the tensors", async () => {
    // Slots of 7 values: the sum goes in 5 pieces, the gather one row a piece.
    const shared = sharedMemoryGroup(size, 7);
    const others = ranksInThreads(
      shared,
      size,
      `const t = b.fromArray(valuesOf(rank), [5, 6]);
       return [Array.from(b.readSync(comm.allReduceSum(t))), Array.from(b.readSync(comm.allGather(t)))];`,
    );
    const comm = new SharedMemoryCommunicator(shared, 0, size, b);
    const t = b.fromArray(valuesOf(0), [5, 6]);
    const mine = [Array.from(b.readSync(comm.allReduceSum(t))), Array.from(b.readSync(comm.allGather(t)))];
    const want = [Array.from(b.readSync(expected.allReduceSum(tensors())[0])), Array.from(b.readSync(expected.allGather(tensors())[0]))];
    expect(mine).toEqual(want);
    expect(await Promise.all(others)).toEqual([want, want]);
  });

  it('ends the waits of every rank with an error when one rank breaks the group', async () => {
    const shared = sharedMemoryGroup(size);
    const others = ranksInThreads(
      shared,
      size,
      `if (rank === 1) { comm.breakGroup(); return 'broke'; } comm.allReduceSum(b.fromArray([1], [1])); return 'summed';`,
    );
    const comm = new SharedMemoryCommunicator(shared, 0, size, b);
    expect(() => comm.allReduceSum(b.fromArray([1], [1]))).toThrow(/tensor-parallel rank 1 failed; rank 0 stops waiting/);
    expect(await Promise.all(others)).toEqual(['broke', expect.stringMatching(/^error: tensor-parallel rank 1 failed; rank 2 stops waiting/)]);
  });

  it('refuses a rank outside the group and a buffer that holds no slot', () => {
    expect(() => new SharedMemoryCommunicator(sharedMemoryGroup(2), 2, 2, b)).toThrow(/rank 2 is outside a group of 2/);
    expect(() => new SharedMemoryCommunicator(new SharedArrayBuffer(16), 0, 2, b)).toThrow(/does not hold 2 slots/);
  });
});
