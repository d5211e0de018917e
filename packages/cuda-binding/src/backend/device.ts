import type { DType, Tensor } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import type { KernelLaunch } from '../generated/index.js';
import { STREAM, type CudaAddon } from '../native.js';
import { BufferPool } from './buffer-pool.js';
import { KernelCache } from './kernels.js';
import { StepGraphs } from './step-graphs.js';
import { CudaTensor, DeviceBuffer, DTYPE_BYTES, TensorLifetimes, asCuda, elementCount } from './tensor.js';

export type FloatDType = 'f16' | 'bf16';

/** Blocks of heads one paged_decode launch may have (batch x heads / group): 256 KB of counters. */
export const SPLIT_COUNTERS = 65_536;

/** Which kernels take the decode products (`matmul` of up to 64 rows); cuBLAS takes the rest. */
export interface ProductKernels {
  /** 1 to 4 rows through gemv (first). */
  readonly gemv?: boolean;
  /** Up to 64 rows through stream_gemm. */
  readonly streamGemm?: boolean;
  /** cuBLAS's products of up to 64 rows through the algorithm timed fastest at each shape's first call (GemmParams.tune). */
  readonly tuned?: boolean;
}

/**
 * What every group of backend operations needs: the addon, tensor allocation and
 * lifetimes, uploads and kernel launches on the compute stream. Everything here is
 * asynchronous on the device except `download`.
 */
export class CudaDevice {
  readonly kernels = new KernelCache();
  /** causal_prefill's K/V buffers (CausalPrefillSpec.stages): two, unless ARKVALE_PREFILL_STAGES=1 (for measurements). */
  prefillStages: 1 | 2 = 2;
  /** paged_decode's finished splits per block of heads (made by splitCounters). */
  private counters?: CudaTensor;
  /** Tokens a paged_decode split covers (pagedDecodeSplits): its default unless ARKVALE_DECODE_SPLIT_TOKENS is set (for measurements). */
  decodeSplitTokens?: number;
  /**
   * The shared memory a block may have on this GPU (opted in): 227 KB on sm_90, 163 KB on
   * sm_80, 99 KB on sm_86 and sm_89, where causal_prefill falls back to one stage.
   */
  maxSharedPerBlock = Number.POSITIVE_INFINITY;
  readonly lifetimes = new TensorLifetimes();
  /** Where tensors' memory comes from and goes back to. */
  readonly buffers: BufferPool;
  /** Decode steps as CUDA graphs; every call below goes through its addon. */
  readonly graphs: StepGraphs;
  /** The addon, as the step graphs see it (recorded or checked during a graphed step). */
  readonly addon: CudaAddon;
  private readonly release = (ptr: bigint, bytes: number) => this.buffers.release(ptr, bytes);

  constructor(
    addon: CudaAddon,
    /** Activations and KV pages. */
    readonly dtype: FloatDType,
    readonly multiprocessors: number,
    /** Fill every new allocation with 0xff bytes (NaN in every float type), so unwritten outputs show. */
    readonly poison = false,
    graphs = true,
    /** The kernels that take decode products (none: cuBLAS). */
    readonly products: ProductKernels = {},
  ) {
    this.graphs = new StepGraphs(addon, graphs);
    this.addon = this.graphs.addon;
    this.buffers = new BufferPool(this.addon, this.graphs);
  }

  /**
   * paged_decode's count of finished splits for each block of heads (its last split
   * merges them and sets the count back to 0, so the counts are 0 between launches):
   * made and zeroed once, on first use. The backend makes it when it starts, so that no
   * recorded step does.
   */
  splitCounters(): CudaTensor {
    if (!this.counters) {
      const what = 'paged decode split counters';
      this.counters = this.lifetimes.untracked(() => this.empty([SPLIT_COUNTERS], 'i32', what));
      this.addon.memset(this.counters.ptr, 0, this.counters.bytes, STREAM.compute, what);
    }
    return this.counters;
  }

  /** A new, uninitialised tensor (device memory from the caching allocator). */
  empty(shape: readonly number[], dtype: DType, what: string): CudaTensor {
    const bytes = elementCount(shape) * DTYPE_BYTES[dtype];
    // Zero-sized tensors still get a (small) allocation, so every tensor has an address.
    const ptr = this.buffers.alloc(Math.max(bytes, 16), what);
    if (this.poison && bytes > 0) this.addon.memset(ptr, 0xff, bytes, STREAM.compute, what);
    return this.lifetimes.adopt(new CudaTensor(new DeviceBuffer(ptr, bytes, this.release), 0, [...shape], dtype));
  }

  /** A view sharing `t`'s memory. */
  view(t: CudaTensor, byteOffset: number, shape: readonly number[]): CudaTensor {
    t.buffer.retain();
    return this.lifetimes.adopt(new CudaTensor(t.buffer, t.byteOffset + byteOffset, [...shape], t.dtype));
  }

  upload(data: ArrayBufferView, shape: readonly number[], dtype: DType, what: string): CudaTensor {
    const t = this.empty(shape, dtype, what);
    if (data.byteLength !== t.bytes) throw invalidArgument(`${what}: ${data.byteLength} bytes for a [${shape.join(', ')}] ${dtype} tensor of ${t.bytes}`);
    if (t.bytes > 0) this.addon.upload(t.ptr, data, STREAM.compute, what);
    return t;
  }

  /** The tensor's bytes on the host (waits for the compute stream). */
  download(t: CudaTensor, what: string): Uint8Array {
    const out = new Uint8Array(t.bytes);
    if (t.bytes > 0) this.addon.download(t.ptr, out, STREAM.compute, what);
    return out;
  }

  copy(dst: CudaTensor, dstOffset: number, src: CudaTensor, bytes: number, what: string): void {
    if (bytes > 0) this.addon.copy(dst.ptr + BigInt(dstOffset), src.ptr, bytes, STREAM.compute, what);
  }

  launch<Spec, Args>(kernel: KernelLaunch<Spec, Args>, args: Args, stream: number = STREAM.compute): void {
    const grid = kernel.grid(args);
    // A launch over nothing (no tokens, no pages) is valid and does nothing.
    if (grid[0] * grid[1] * grid[2] === 0) return;
    if (kernel.dynamicSharedBytes > this.maxSharedPerBlock) {
      throw new Error(`${kernel.name} needs ${kernel.dynamicSharedBytes} bytes of shared memory a block; this GPU allows ${this.maxSharedPerBlock}`);
    }
    this.addon.launch(kernel.name, grid, kernel.pack(args), stream);
  }

  /** Checks a tensor's dtype and rank for an operation, with a message that names both. */
  expect(t: CudaTensor, what: string, dtypes: readonly DType[], rank?: number): CudaTensor {
    if (!dtypes.includes(t.dtype)) throw invalidArgument(`${what}: expected a ${dtypes.join(' or ')} tensor, got ${t.dtype}`);
    if (rank !== undefined && t.shape.length !== rank) throw invalidArgument(`${what}: expected ${rank} dimensions, got [${t.shape.join(', ')}]`);
    return t;
  }

  tensor(t: Tensor, what: string): CudaTensor {
    return asCuda(t, what);
  }
}
