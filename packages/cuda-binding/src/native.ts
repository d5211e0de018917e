/**
 * The functions of build/Release/arkvale_cuda.node (native/bind_*.cc), as the
 * TypeScript layer sees them. Everything is synchronous from JavaScript's side;
 * what runs on the GPU is queued on one of three streams and ordered with events.
 *
 * Conventions:
 * - Pointers are `bigint`: device addresses, or host addresses of pinned memory.
 * - Streams are ids: {@link STREAM.compute} (0), {@link STREAM.deviceToHost} (1),
 *   {@link STREAM.hostToDevice} (2), all non-blocking (no implicit ordering with
 *   each other or with the legacy default stream).
 * - `what` names the operation for error messages: every CUDA or cuBLAS failure
 *   throws an `Error` whose message names the call, `what` and the CUDA error
 *   string, e.g. `cudaMemcpyAsync failed in copyPages (host -> device, 12 pages):
 *   invalid argument`. Out-of-memory errors say how much was asked for and how much
 *   is free. A wrong kind of argument throws a `TypeError`, a bad value a
 *   `RangeError`, both naming the function and the argument.
 * - One device per process, driven from the JavaScript thread that loaded the
 *   addon (CUDA's current device is per host thread).
 */

/** Stream ids (the `stream: number` arguments below): 0 compute, 1 device->host copies, 2 host->device copies. */
export const STREAM = { compute: 0, deviceToHost: 1, hostToDevice: 2 } as const;

export interface DeviceInfo {
  readonly index: number;
  readonly name: string;
  readonly totalBytes: number;
  /** From NVML (no CUDA context needed); exact from the runtime for the device init() chose. */
  readonly freeBytes: number;
  /** Compute capability. */
  readonly major: number;
  readonly minor: number;
  readonly multiprocessors: number;
  readonly l2Bytes: number;
  readonly maxSharedPerBlockOptin: number;
  /** "0000:19:00.0" */
  readonly pciBusId: string;
}

export interface ProbeResult {
  /** True when at least one CUDA device is usable by this runtime. */
  readonly ok: boolean;
  /** Why not, e.g. "no NVIDIA driver found (...)" or "no CUDA device". */
  readonly reason?: string;
  /** The CUDA version the driver supports (13000 = 13.0); 0 without a driver. */
  readonly driverVersion: number;
  /** The CUDA runtime linked into the addon (13000 = 13.0). */
  readonly runtimeVersion: number;
  /** The driver's release ("580.65.06"), when NVML answers. */
  readonly driverRelease?: string;
  readonly devices: readonly DeviceInfo[];
}

export interface MemInfo {
  readonly freeBytes: number;
  readonly totalBytes: number;
}

export interface AllocatorStats {
  /** Bytes held in slabs (what cudaMalloc gave the allocator). */
  readonly reservedBytes: number;
  /** Bytes handed out (sizes rounded up to 256). */
  readonly allocatedBytes: number;
  readonly slabs: number;
  readonly freeBlocks: number;
  /** cudaMalloc calls so far, failed ones included. */
  readonly cudaMallocCalls: number;
}

export interface PinnedBlock {
  /** The host address (for hostView and hostFree). */
  readonly host: bigint;
  /** The same memory as kernels and copies see it (mapped pinned memory). */
  readonly device: bigint;
}

export interface KernelEntry {
  /** The specialisation's name, as the launch surface's `name`. */
  readonly name: string;
  readonly blockThreads: number;
  /** Bytes of the packed parameter buffer launch() expects. */
  readonly paramBytes: number;
  /** Shared memory launch() asks for (kernels over 48 KB), 0 when the kernel declares it statically. */
  readonly dynamicSharedBytes: number;
}

export interface BlasStatus {
  readonly loaded: boolean;
  /** The library that loaded, e.g. "libcublas.so.13". */
  readonly library?: string;
  /** major * 10000 + minor * 100 + patch (as CUBLAS_VERSION). */
  readonly version?: number;
  /** Why it is not loaded, e.g. "libcublas.so.13 not found (dlopen: ...)". */
  readonly reason?: string;
}

/** NCCL, opened at run time (nccl.ts): which library loaded and its version, or why none did. */
export interface NcclStatus {
  readonly loaded: boolean;
  /** The library that loaded, e.g. "libnccl.so.2" or the nvidia-nccl wheel's path. */
  readonly library?: string;
  /** As ncclGetVersion: major * 10000 + minor * 100 + patch. */
  readonly version?: number;
  /** Why it is not loaded, e.g. "libnccl.so.2 not found (dlopen: ...); tried ...". */
  readonly reason?: string;
}

export type GemmType = 'f16' | 'bf16' | 'f32';

/** cublasGemmEx, column-major: C = alpha * op(A) * op(B) + beta * C, accumulated in f32. */
export interface GemmParams {
  readonly transA: boolean;
  readonly transB: boolean;
  /** op(A) is m x k, op(B) is k x n, C is m x n. */
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly a: bigint;
  readonly aType: GemmType;
  readonly lda: number;
  readonly b: bigint;
  readonly bType: GemmType;
  readonly ldb: number;
  readonly c: bigint;
  readonly cType: GemmType;
  readonly ldc: number;
  readonly alpha: number;
  readonly beta: number;
  /** A stream id (see STREAM). */
  readonly stream: number;
  readonly what: string;
  /**
   * Through the algorithm timed fastest at the shape's first call (cublasGemmEx or one of
   * cuBLASLt's candidates), kept for the process's life; a first call while the stream is
   * captured, or beta other than 0, keeps cublasGemmEx.
   */
  readonly tune?: boolean;
}

/** A tuned product shape's choice (CudaAddon.gemmTuning). */
export interface GemmTuningChoice {
  /** The shape's first call's `what`. */
  readonly what: string;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** 'cublasGemmEx', or 'cublasLt #i' (i: the rank cuBLASLt's heuristic gave it). */
  readonly algorithm: string;
  /** Device microseconds of the chosen algorithm from a cold L2, the best of three (0: not timed). */
  readonly us: number;
  /** cublasGemmEx's. */
  readonly gemmExUs: number;
  /** cuBLASLt candidates timed. */
  readonly candidates: number;
}

export interface BuildInfo {
  /** What the binary holds code for: ['sm_80', ..., 'compute_90'] (PTX last). */
  readonly archs: readonly string[];
  /** The nvcc that compiled it. */
  readonly nvcc: string;
  readonly runtimeVersion: number;
}

export interface CudaAddon {
  /** Driver, runtime and devices. Never throws; creates no CUDA context. */
  probe(): ProbeResult;
  /**
   * Selects the device, creates the three streams and a pinned staging ring of
   * `stagingBytes` for uploads. Again for the same device: nothing happens (the
   * first ring size stays); another device throws.
   */
  init(device: number, stagingBytes: number): void;
  /** cudaMemGetInfo of the device. */
  memInfo(): MemInfo;

  /**
   * Device memory from the caching allocator: 256-byte aligned; requests up to
   * 1 MiB come from 2 MiB slabs, larger ones from slabs of max(20 MiB, the request
   * rounded up to 2 MiB); best fit, split, merged with free neighbours on free. When
   * cudaMalloc fails, fully free cached slabs are released and it is tried once
   * more; then it throws `out of device memory allocating 1.50 GiB for <what>:
   * 1.20 GiB free of 139.8 GiB (cached by the allocator: 0.30 GiB)`.
   */
  alloc(bytes: number, what: string): bigint;
  /**
   * Returns a block to the allocator; it may be handed out again at once. Safe for
   * memory last used on the compute stream (later compute work is ordered after
   * it); for memory a copy stream still uses, order that work first (waitEvent on
   * the compute stream, or synchronize). Throws on an unknown pointer or a double free.
   */
  free(ptr: bigint): void;
  allocatorStats(): AllocatorStats;
  /** Returns every fully free slab to cudaFree (which synchronises the device: counted). */
  releaseCached(): void;

  /** Pinned host memory, mapped into the device's address space (cudaHostAllocMapped | Portable). */
  hostAlloc(bytes: number, what: string): PinnedBlock;
  /** Frees a block from hostAlloc and detaches every hostView of it (counted: cudaFreeHost synchronises). */
  hostFree(host: bigint): void;
  /**
   * An ArrayBuffer over pinned memory, no copy: [host, host + bytes) must lie in
   * one hostAlloc block. Valid until hostFree of that block, which detaches it
   * (its byteLength becomes 0). Writes the GPU makes are visible after the work is
   * known to be done (an event, a synchronize).
   */
  hostView(host: bigint, bytes: number): ArrayBuffer;

  /**
   * Copies `src` into the pinned staging ring now (the caller may reuse `src` at
   * once) and queues the host->device copy on `stream`. A ring region is reused only
   * after the copy reading it is done (an event query; a wait only when still busy,
   * counted). Uploads larger than the ring go in ring-sized pieces. Not allowed while
   * the stream is being captured into a graph.
   */
  upload(dst: bigint, src: ArrayBufferView, stream: number, what: string): void;
  /** Synchronous: device->host on `stream` through pinned memory, waits (counted), then fills `dst`. */
  download(src: bigint, dst: ArrayBufferView, stream: number, what: string): void;
  /** cudaMemcpyAsync with cudaMemcpyDefault (any direction; pinned host addresses work too). */
  copy(dst: bigint, src: bigint, bytes: number, stream: number, what: string): void;
  /**
   * Page dstSlots[i] of dst <- page srcSlots[i] of src (pages of `pageBytes`): one
   * cudaMemcpyAsync per run of slots consecutive on both sides.
   */
  /** cudaMemcpy2DAsync: `rows` rows of `widthBytes`, from rows `srcPitch` bytes apart to rows `dstPitch` bytes apart. */
  copy2d(dst: bigint, dstPitch: number, src: bigint, srcPitch: number, widthBytes: number, rows: number, stream: number, what: string): void;
  copyPages(dst: bigint, dstSlots: Int32Array, src: bigint, srcSlots: Int32Array, pageBytes: number, stream: number, what: string): void;
  memset(dst: bigint, byte: number, bytes: number, stream: number, what: string): void;

  /** Records a pooled event (timing enabled) on `stream`; returns its id. */
  recordEvent(stream: number): number;
  /** Later work on `stream` waits (on the device) for the event. */
  waitEvent(stream: number, event: number): void;
  /** Whether the event's work is done (cudaEventQuery; never blocks). */
  eventDone(event: number): boolean;
  /** The host waits for the event's work, not for work issued after it (cudaEventSynchronize). Counted. */
  synchronizeEvent(event: number): void;
  /** Returns the id to the pool. */
  releaseEvent(event: number): void;
  /** Waits for one stream, or the whole device without an argument. Counted. */
  synchronize(stream?: number): void;
  /** Milliseconds between two completed events. */
  elapsedMs(start: number, end: number): number;
  /** cudaProfilerStart (true) or cudaProfilerStop (false): what a profiler run with --profile-from-start off collects. */
  profilerRange(on: boolean): void;
  /**
   * Host-blocking synchronisations so far: cudaStreamSynchronize,
   * cudaEventSynchronize (staging-ring waits included), cudaDeviceSynchronize,
   * downloads, and cudaFree / cudaFreeHost (which synchronise implicitly).
   */
  syncCount(): number;

  /** The generated kernels compiled into this build. */
  kernels(): KernelEntry[];
  /**
   * Launches a kernel by name with a packed parameter buffer (the launch surface's
   * `pack()`), block (blockThreads, 1, 1), no dynamic shared memory.
   */
  launch(name: string, grid: readonly [number, number, number], params: Uint8Array, stream: number): void;
  /**
   * Sets (given `on`) and returns whether generated kernels launch as programmatic
   * dependents of the kernel before them (sm_90+; always false below).
   */
  dependentLaunch(on?: boolean): boolean;

  /** cuBLAS, loaded on the first call. Never throws. */
  blasStatus(): BlasStatus;
  /**
   * Loads NCCL on the first call (ARKVALE_NCCL's path first, then `wheelLibrary` when
   * given, then libnccl.so.2 and libnccl.so on the library path) and remembers the
   * outcome; never throws. Absent in addons built before it.
   */
  ncclStatus?(wheelLibrary?: string): NcclStatus;
  /** ncclGetUniqueId: the 128 bytes every rank's `ncclCommInit` takes (rank 0 makes them). Throws `NCCL is not available: <reason>`. */
  ncclUniqueId?(): Uint8Array;
  /** ncclCommInitRank on this process's device: blocks until every rank of `size` has joined; returns a handle. */
  ncclCommInit?(id: Uint8Array, size: number, rank: number): number;
  /** ncclAllReduce (sum) of `count` elements, queued on the compute stream. */
  ncclAllReduce?(comm: number, src: bigint, dst: bigint, count: number, dtype: 'f16' | 'bf16' | 'f32', what: string): void;
  /** ncclAllGather of `sendCount` elements a rank, rank-major into `dst`, queued on the compute stream. */
  ncclAllGather?(comm: number, src: bigint, dst: bigint, sendCount: number, dtype: 'f16' | 'bf16' | 'f32', what: string): void;
  ncclCommDestroy?(comm: number): void;
  /**
   * cublasGemmEx (CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) on `stream`, with a
   * workspace from the allocator, or with `tune` the algorithm timed fastest for the
   * shape (GemmParams.tune). Throws `cuBLAS is not available: <reason>` or
   * `cublasGemmEx failed in <what>: CUBLAS_STATUS_... (m=.., n=.., k=..)`.
   */
  gemm(params: GemmParams): void;
  /** Each tuned product shape's choice so far (GemmParams.tune). */
  gemmTuning(): GemmTuningChoice[];

  /** Starts capturing `stream` into a CUDA graph (thread-local mode). */
  beginCapture(stream: number): void;
  /** Ends the capture and instantiates it; returns a graph id. */
  endCapture(stream: number): number;
  launchGraph(graph: number, stream: number): void;
  destroyGraph(graph: number): void;

  /** What this binary was compiled for (not in the list: lets a bundle without build/status.json report its archs). */
  buildInfo(): BuildInfo;
}
