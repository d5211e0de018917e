import type { Communicator, Tensor } from '@arkvale/core';
import { ArkvaleError, invalidArgument } from '@arkvale/core';
import { STREAM, type CudaAddon } from '../native.js';
import { ncclStatus } from '../nccl.js';
import type { CudaDevice } from './device.js';
import { asCuda, DTYPE_BYTES } from './tensor.js';

/**
 * NCCL's entry points in this addon, once NCCL has loaded (where `ncclStatus` looks: the
 * wheel's library too), or a clear refusal: an addon built before them, or no NCCL.
 */
function ncclOf(addon: CudaAddon): Required<Pick<CudaAddon, 'ncclUniqueId' | 'ncclCommInit' | 'ncclAllReduce' | 'ncclAllGather' | 'ncclCommDestroy'>> {
  const { ncclUniqueId, ncclCommInit, ncclAllReduce, ncclAllGather, ncclCommDestroy } = addon;
  if (!ncclUniqueId || !ncclCommInit || !ncclAllReduce || !ncclAllGather || !ncclCommDestroy) {
    throw new ArkvaleError('NO_DEVICE', 'this build of the CUDA addon has no NCCL communicator (rebuild @arkvale/cuda-binding)');
  }
  const status = ncclStatus(addon);
  if (!status.loaded) throw new ArkvaleError('NO_DEVICE', `tensor parallelism over NCCL: NCCL is not available: ${status.reason}`);
  return { ncclUniqueId, ncclCommInit, ncclAllReduce, ncclAllGather, ncclCommDestroy };
}

/** A new communicator's id (ncclGetUniqueId), made by rank 0 and handed to every rank's `CudaBackend.communicator`. */
export function ncclUniqueId(addon: CudaAddon): Uint8Array {
  return ncclOf(addon).ncclUniqueId();
}

/**
 * One tensor-parallel rank's collectives over NCCL (docs/DESIGN.md, "Tensor
 * parallelism"), on the GPU of this process's CUDA backend: the all-reduce and the
 * all-gather are queued on the compute stream and return at once, like any launch.
 * Results are new tensors; the argument stays the caller's.
 */
export class NcclCommunicator implements Communicator {
  private comm: number | null;
  private readonly nccl: ReturnType<typeof ncclOf>;

  constructor(
    private readonly d: CudaDevice,
    id: Uint8Array,
    readonly size: number,
    readonly rank: number,
  ) {
    if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) {
      throw invalidArgument(`an NCCL communicator needs 0 <= rank < size, got rank ${rank} of ${size}`);
    }
    this.nccl = ncclOf(d.addon);
    // Blocks until every rank has joined (each in its own process, one GPU each).
    this.comm = this.nccl.ncclCommInit(id, size, rank);
  }

  allReduceSum(t: Tensor): Tensor {
    const x = this.float(t, 'allReduceSum');
    const out = this.d.empty(x.shape, x.dtype, 'an all-reduce');
    this.nccl.ncclAllReduce(this.handle, x.ptr, out.ptr, x.elements, x.dtype as 'f16' | 'bf16' | 'f32', 'an all-reduce');
    return out;
  }

  /** NCCL gathers rank-major ([size, rows, cols]); each rank's slice is then laid side by side with one strided copy. */
  allGather(t: Tensor): Tensor {
    const x = this.float(t, 'allGather');
    if (x.shape.length !== 2) throw invalidArgument(`allGather takes [rows, cols] tensors, got [${x.shape.join(', ')}]`);
    const [rows, cols] = x.shape;
    const dtype = x.dtype as 'f16' | 'bf16' | 'f32';
    const gathered = this.d.empty([this.size * rows, cols], dtype, 'an all-gather');
    this.nccl.ncclAllGather(this.handle, x.ptr, gathered.ptr, x.elements, dtype, 'an all-gather');
    const out = this.d.empty([rows, this.size * cols], dtype, 'an all-gather laid side by side');
    const row = cols * DTYPE_BYTES[dtype];
    for (let r = 0; r < this.size; r++) {
      this.d.addon.copy2d(out.ptr + BigInt(r * row), this.size * row, gathered.ptr + BigInt(r * rows * row), row, row, rows, STREAM.compute, 'an all-gather');
    }
    this.d.lifetimes.dispose(gathered);
    return out;
  }

  /** Frees the communicator (after its queued collectives); later collectives are refused. */
  destroy(): void {
    if (this.comm === null) return;
    const comm = this.comm;
    this.comm = null;
    this.nccl.ncclCommDestroy(comm);
  }

  private get handle(): number {
    if (this.comm === null) throw invalidArgument('this NCCL communicator was destroyed');
    return this.comm;
  }

  private float(t: Tensor, op: string) {
    const x = asCuda(t, op);
    if (x.dtype === 'i32') throw invalidArgument(`${op}: an i32 tensor; collectives here take floats`);
    return x;
  }
}
