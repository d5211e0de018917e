import { ncclStatus, ncclUniqueId, type CudaBackend } from '@arkvale/cuda-binding';
import { mismatches, result, type CheckResult, type Twin } from './twin.js';

/**
 * Tensor parallelism's NCCL communicator on this one GPU: a group of one rank, whose
 * all-reduce and all-gather give back its own values bit for bit (one GPU cannot hold
 * two ranks of one communicator). Nothing when NCCL does not load here: the note says why.
 */
export function ncclChecks(t: Twin, gpu: CudaBackend, note: (text: string) => void): CheckResult[] {
  const status = ncclStatus(gpu.addon);
  if (!status.loaded) {
    note(`NCCL not checked: ${status.reason}\n`);
    return [];
  }
  const comm = gpu.communicator(ncclUniqueId(gpu.addon), 1, 0);
  try {
    const out: CheckResult[] = [];
    for (const [rows, cols] of [
      [1, 4096],
      [3, 214],
    ] as const) {
      const x = t.floats([rows, cols]).gpu;
      const values = t.gpu.readSync(x);
      out.push(result('NCCL all-reduce, one rank', `[${rows}, ${cols}] ${t.dtype}`, mismatches(t.gpu.readSync(comm.allReduceSum(x)), values), 0));
      out.push(result('NCCL all-gather, one rank', `[${rows}, ${cols}] ${t.dtype}`, mismatches(t.gpu.readSync(comm.allGather(x)), values), 0));
    }
    return out;
  } finally {
    comm.destroy();
  }
}
