import v8 from 'node:v8';
import type {
  GraphedStep,
  Backend,
  CausalAttentionArgs,
  ChunkAttentionArgs,
  CopyTicket,
  DigestStorage,
  DigestVariant,
  KvGeometry,
  KvStorage,
  PagedAttentionArgs,
  PendingRead,
  PoolLocation,
  RopeSpec,
  RopeTable,
  SamplingParams,
  SelectAttendArgs,
  SelectAttendResult,
  SelectResidentArgs,
  SelectResidentResult,
  Tensor,
  PlaceTokenCellsArgs,
  EvictTokenCellsArgs,
} from '@arkvale/core';
import { decodeFloats, floatToBf16Bits, floatToHalfBits, invalidArgument } from '@arkvale/core';
import { pagedDecodeSplits } from '@arkvale/kernels-codegen/launch';
import type { CudaAddon } from '../native.js';
import { loadCudaAddon } from '../status.js';
import { causalAttention, chunkAttention, pagedAttention } from './attention-ops.js';
import { argmax, sample } from './decoding-ops.js';
import * as dense from './dense-ops.js';
import { STREAM } from '../native.js';
import { CudaDevice, type FloatDType } from './device.js';
import * as kv from './kv-ops.js';
import { NcclCommunicator } from './nccl-communicator.js';
import { PendingReads } from './pending-reads.js';
import type { StepGraphStats } from './step-graphs.js';
import * as select from './select-ops.js';
import * as tokenCells from './token-ops.js';
import { type CudaTensor, DTYPE_BYTES, elementCount } from './tensor.js';

export interface CudaBackendOptions {
  /** Activations, KV pages and weights (checkpoints in another float type are converted). Default f16. */
  readonly dtype?: FloatDType;
  /** CUDA device index. Default 0. */
  readonly device?: number;
  /** Pinned staging memory for uploads. Default 64 MiB. */
  readonly stagingBytes?: number;
  /** The addon to use (tests); loaded and checked by default. */
  readonly addon?: CudaAddon;
  /** Fill new tensors with NaN before any kernel writes them (checks that every output element is written). */
  readonly poison?: boolean;
  /**
   * Replay decode steps as CUDA graphs (`graphStep`). Default on, unless the
   * environment has ARKVALE_CUDA_GRAPHS=0; off issues every launch of every step.
   */
  readonly graphs?: boolean;
  /**
   * Replay a step without running its forward pass's JavaScript once a checked replay
   * showed its record predicts it (StepGraphs). Default on, unless the environment has
   * ARKVALE_DIRECT_REPLAY=0; off checks every replayed call against the record.
   */
  readonly directReplay?: boolean;
  /**
   * Run matrix products of 1 to 4 rows (decode steps of up to 4 sequences) with the gemv
   * kernel: a warp per weight row, read whole, for batch-1 latency. A row gets the same
   * bits whatever else shares its product, but not the bits of cuBLAS or stream_gemm, so
   * the engine's invariant blocks become 4 unpadded rows (invariantProducts): a step of
   * more than 4 sequences reads the weights once per 4. Default off, unless the
   * environment has ARKVALE_GEMV=1.
   */
  readonly gemv?: boolean;
  /**
   * Run matrix products of 1 to 64 rows (every decode step's) with the stream_gemm kernel,
   * which loads the weights straight into tensor-core fragments and gives a row the same
   * bits whatever else shares its product, instead of cuBLAS: the engine's invariant
   * blocks are then 64 unpadded rows, so a batch of one runs one row. Default off, unless
   * the environment has ARKVALE_STREAM_GEMM=1. Shapes it does not take (k not a multiple
   * of 32, f32 operands) still go to cuBLAS; gemv, when on, takes products of up to 4
   * rows first.
   */
  readonly streamGemm?: boolean;
  /**
   * Run cuBLAS's products of up to 64 rows (every decode step's, when neither gemv nor
   * stream_gemm takes them) through the algorithm timed fastest at each product shape's
   * first call: cublasGemmEx, or one of up to eight cuBLASLt candidates, each timed from a
   * cold L2. The choice is per shape and holds for the process's life, so products padded
   * to 64 rows (invariantProducts) still give a row the same numbers alone or in any
   * batch; the first call of each shape costs a few milliseconds.
   * On an H100 it took the 8B step at 4 x 128k from 10.93 to 10.71 ms (docs/BENCHMARKS.md,
   * twelfth session). Default on, unless the environment has ARKVALE_TUNED_PRODUCTS=0.
   */
  readonly tunedProducts?: boolean;
  /**
   * Launch the generated kernels as programmatic dependents of the kernel before them
   * (sm_90+): a kernel is scheduled while the previous one finishes and waits for its
   * results at its first line, so the gap between two short kernels shrinks. Default
   * on, unless the environment has ARKVALE_DEPENDENT_LAUNCH=0; a GPU before sm_90 keeps
   * it off. On an H100 it took about 1% off a batch-1 decode step (docs/BENCHMARKS.md).
   */
  readonly dependentLaunch?: boolean;
}

/**
 * Direct replays run a decode step's forward pass only a few times a page of steps, and
 * V8 flushes the bytecode of functions that go unrun over a few garbage collections: the
 * steps that still run the pass (a page starting or filling, the first under a key) then
 * recompiled it, and took 2-3x their host time (host-overhead.mjs: a page-fill step 4.2
 * ms against 1.7 ms). Keeping bytecode is a process-wide V8 setting; it costs the memory
 * of bytecode that would otherwise be dropped.
 */
function keepBytecode(): void {
  v8.setFlagsFromString('--no-flush-bytecode');
}

/** f32 values in a 16-bit float type, as raw little-endian bits. */
function encodeHalves(values: Float32Array, dtype: FloatDType): Uint16Array {
  const encode = dtype === 'f16' ? floatToHalfBits : floatToBf16Bits;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]);
  return out;
}

/**
 * core's Backend on an NVIDIA GPU: tensors in device memory (one caching allocator),
 * weights and activations in f16 or bf16 with f32 accumulation, cuBLAS for the matrix
 * products, the generated kernels for everything else, a device KV pool and a pinned
 * host pool. Work is queued on the compute stream; only `read`/`readSync` wait for it
 * (and `readLater`'s `get` when the copy it began has not finished yet).
 */
export class CudaBackend implements Backend {
  readonly name = 'cuda';
  /**
   * cuBLAS picks its algorithm (tiles, split-K) by the product's shape, and a row's
   * numbers depend only on that algorithm and the row: every decode product is run at
   * 64 rows, padded, so a row gets the same numbers alone or in any batch, and a batch
   * of up to 64 rows reads each weight once (docs/DESIGN.md, "Batch invariance").
   * stream_gemm, when on, gives a row the same numbers for any row count up to 64, so its
   * products are not padded: a batch of one runs one row, not 64. gemv keeps a row's
   * numbers within blocks of 4 rows.
   */
  get invariantProducts(): { readonly rows: number; readonly pad: boolean } {
    return this.gemv ? { rows: 4, pad: false } : { rows: dense.DECODE_PRODUCT_ROWS, pad: !this.streamGemm };
  }
  /**
   * A 4096-row chunk at 30k tokens through the paged kernel (CUDA cores) took seconds;
   * the causal prefill (tensor cores) runs 4 prompts of 30k in 7.2 s on an H100. Four
   * 30k-token prompts through the server did not finish in 250 s with chunks.
   */
  readonly prefersOneShotPrefill = true;
  readonly dtype: FloatDType;
  readonly deviceName: string;
  private readonly d: CudaDevice;
  private readonly copies: kv.PageCopies;
  private readonly reads: PendingReads;

  constructor(options: CudaBackendOptions = {}) {
    const addon = options.addon ?? loadCudaAddon();
    const device = options.device ?? 0;
    addon.init(device, options.stagingBytes ?? 64 << 20);
    const info = addon.probe().devices.find((x) => x.index === device);
    if (!info) throw invalidArgument(`CUDA device ${device} does not exist`);
    this.dtype = options.dtype ?? 'f16';
    this.deviceName = info.name;
    this.d = new CudaDevice(addon, this.dtype, info.multiprocessors, options.poison ?? false, options.graphs ?? process.env.ARKVALE_CUDA_GRAPHS !== '0', {
      gemv: options.gemv ?? process.env.ARKVALE_GEMV === '1',
      streamGemm: options.streamGemm ?? process.env.ARKVALE_STREAM_GEMM === '1',
      tuned: options.tunedProducts ?? process.env.ARKVALE_TUNED_PRODUCTS !== '0',
    });
    if (process.env.ARKVALE_PREFILL_STAGES === '1') this.d.prefillStages = 1;
    // Made before any step is recorded into a graph.
    this.d.splitCounters();
    if (process.env.ARKVALE_DECODE_SPLIT_TOKENS) {
      // Checked here, so that a bad value fails at the start, not inside a step.
      this.d.decodeSplitTokens = pagedDecodeSplits({ tokens: 1, splitTokens: Number(process.env.ARKVALE_DECODE_SPLIT_TOKENS) }).splitTokens;
    }
    if (info.maxSharedPerBlockOptin > 0) this.d.maxSharedPerBlock = info.maxSharedPerBlockOptin;
    this.copies = new kv.PageCopies(this.d);
    this.reads = new PendingReads(this.d.addon, undefined, this.d.graphs);
    this.d.graphs.directReplay = options.directReplay ?? process.env.ARKVALE_DIRECT_REPLAY !== '0';
    if (this.d.graphs.directReplay) keepBytecode();
    // The addon's switch is the process's (one device per process): set it either way.
    this.dependentLaunch = addon.dependentLaunch(options.dependentLaunch ?? process.env.ARKVALE_DEPENDENT_LAUNCH !== '0');
  }

  /** Whether the generated kernels launch as programmatic dependents (CudaBackendOptions.dependentLaunch, where the GPU has it). */
  readonly dependentLaunch: boolean;

  /** What the step graphs did: steps recorded, replayed and fallen back, graphs held. */
  get graphStats(): StepGraphStats {
    return this.d.graphs.stats;
  }

  /** Whether products of up to 64 rows run through stream_gemm (CudaBackendOptions.streamGemm; fixed for the backend's life). */
  get streamGemm(): boolean {
    return this.d.products.streamGemm ?? false;
  }

  /** Whether cuBLAS's products of up to 64 rows run tuned (CudaBackendOptions.tunedProducts; fixed for the backend's life). */
  get tunedProducts(): boolean {
    return this.d.products.tuned ?? false;
  }

  /** Whether products of up to 4 rows run through gemv (CudaBackendOptions.gemv; fixed for the backend's life). */
  get gemv(): boolean {
    return this.d.products.gemv ?? false;
  }

  /** Whether decode steps are replayed as CUDA graphs (switchable between steps: benchmarks time both). */
  get graphs(): boolean {
    return this.d.graphs.enabled;
  }

  set graphs(on: boolean) {
    this.d.graphs.enabled = on;
  }

  graphStep<P>(key: string, step: GraphedStep<P>): Tensor {
    return this.tidy(() =>
      this.d.graphs.run(key, step, (out) => this.detach(out), {
        same: (a, b) => {
          const [x, y] = [this.d.tensor(a, 'graphStep'), b as CudaTensor];
          return x.ptr === y.ptr && x.dtype === y.dtype && x.shape.length === y.shape.length && x.shape.every((n, i) => n === y.shape[i]);
        },
        copy: (recorded) => this.copyRecorded(recorded as CudaTensor),
      }),
    );
  }

  /** Whether replays skip the body of a step once a checked replay predicts it (on by default; ARKVALE_DIRECT_REPLAY=0 turns it off). */
  get directReplay(): boolean {
    return this.d.graphs.directReplay;
  }

  set directReplay(on: boolean) {
    this.d.graphs.directReplay = on;
  }

  fromStepValues(values: () => Int32Array, shape: readonly number[]): Tensor {
    const t = this.d.empty(shape, 'i32', `upload of a [${shape.join(', ')}] i32 tensor`);
    if (t.bytes > 0) {
      const checked = () => {
        const v = values();
        if (v.length !== t.elements) throw invalidArgument(`step values: ${v.length} for a [${shape.join(', ')}] tensor`);
        return v;
      };
      this.d.graphs.uploadEachStep(t.ptr, checked, 'step values');
    }
    return t;
  }

  /** A step's result in a buffer of its own: a graph's buffers are rewritten by its next replay. */
  private detach(t: Tensor): Tensor {
    const c = this.d.tensor(t, 'graphStep');
    if (!this.d.graphs.owns(c.buffer.ptr)) return t;
    const out = this.copyRecorded(c);
    this.dispose(t);
    return out;
  }

  /**
   * A graphed step's result in a buffer of its own: the step's, or for a direct replay
   * the recorded one (in the graph's buffer, disposed as a tensor since).
   */
  private copyRecorded(recorded: CudaTensor): Tensor {
    const out = this.d.empty(recorded.shape, recorded.dtype, "a graphed step's result");
    if (recorded.bytes > 0) this.d.addon.copy(out.ptr, recorded.ptr, recorded.bytes, STREAM.compute, "a graphed step's result");
    return out;
  }

  /**
   * This process's rank of an NCCL communicator on this backend's GPU, for a
   * tensor-parallel rank's pass (`LlamaForward`'s communicator): `id` from rank 0's
   * `ncclUniqueId`. Blocks until every rank has joined.
   */
  communicator(id: Uint8Array, size: number, rank: number): NcclCommunicator {
    return new NcclCommunicator(this.d, id, size, rank);
  }

  /** The addon underneath (sync counts, allocator statistics, graphs). */
  get addon(): CudaAddon {
    return this.d.addon;
  }

  /** Tensors not yet disposed or collected: a leak check for tests. */
  get liveTensors(): number {
    return this.d.lifetimes.liveTensors;
  }

  tidy<T>(fn: () => T): T {
    return this.d.lifetimes.tidy(fn);
  }

  keep<T extends Tensor>(t: T): T {
    this.d.lifetimes.keep(this.d.tensor(t, 'keep'));
    return t;
  }

  memory(): { freeBytes: number; totalBytes: number } {
    const { freeBytes, totalBytes } = this.d.addon.memInfo();
    const cache = this.d.addon.allocatorStats();
    // Memory the allocator holds but no tensor uses is as good as free, and so is what waits in the buffer pool.
    return { freeBytes: freeBytes + cache.reservedBytes - cache.allocatedBytes + this.d.buffers.bytes, totalBytes };
  }

  /** Backend.releaseCached: the buffers and graphs (trimBuffers), then every fully free slab of the allocator, to cudaFree. */
  releaseCached(): void {
    this.trimBuffers();
    this.d.addon.releaseCached();
  }

  /** Returns the small buffers kept for reuse, and the step graphs' buffers, to the addon's allocator (before reading its statistics). */
  trimBuffers(): void {
    this.d.graphs.clear();
    this.d.buffers.trim();
  }

  // --- memory -------------------------------------------------------------

  fromArray(data: ArrayLike<number>, shape: readonly number[], dtype: 'f32' | 'i32' = 'f32'): Tensor {
    if (elementCount(shape) !== data.length)
      throw invalidArgument(`tensor of shape [${shape.join(', ')}] needs ${elementCount(shape)} elements, got ${data.length}`);
    const host = dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data);
    return this.d.upload(host, shape, dtype, `upload of a [${shape.join(', ')}] ${dtype} tensor`);
  }

  fromBytes(bytes: Uint8Array, shape: readonly number[], dtype: 'f32' | 'f16' | 'bf16'): Tensor {
    const n = elementCount(shape);
    if (bytes.byteLength !== n * DTYPE_BYTES[dtype]) throw invalidArgument(`${bytes.byteLength} bytes of ${dtype} for a [${shape.join(', ')}] tensor`);
    // Stored as the backend's float type; other checkpoint types are converted on the host, once.
    const data = dtype === this.dtype ? bytes : encodeHalves(decodeFloats(bytes, dtype), this.dtype);
    return this.d.upload(data, shape, this.dtype, `upload of a [${shape.join(', ')}] weight`);
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return this.readSync(t);
  }

  readLater(t: Tensor): PendingRead {
    return this.reads.read(this.d.tensor(t, 'readLater'));
  }

  readSync(t: Tensor): Float32Array | Int32Array {
    const c = this.d.tensor(t, 'read');
    const bytes = this.d.download(c, `read of a [${c.shape.join(', ')}] ${c.dtype} tensor`);
    if (c.dtype === 'i32') return new Int32Array(bytes.buffer, bytes.byteOffset, c.elements);
    if (c.dtype === 'f32') return new Float32Array(bytes.buffer, bytes.byteOffset, c.elements);
    return decodeFloats(bytes, c.dtype);
  }

  dispose(t: Tensor): void {
    this.d.lifetimes.dispose(this.d.tensor(t, 'dispose'));
  }

  copyInto(dst: Tensor, src: Tensor): void {
    const d = this.d.tensor(dst, 'copyInto'),
      s = this.d.tensor(src, 'copyInto');
    if (d.dtype !== s.dtype || d.elements !== s.elements)
      throw invalidArgument(`copyInto: a [${s.shape.join(', ')}] ${s.dtype} tensor over a [${d.shape.join(', ')}] ${d.dtype} one`);
    this.d.copy(d, 0, s, s.bytes, 'copyInto');
  }

  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const c = this.d.tensor(t, 'reshape');
    if (elementCount(shape) !== c.elements)
      throw invalidArgument(`reshape: [${c.shape.join(', ')}] has ${c.elements} elements, [${shape.join(', ')}] needs ${elementCount(shape)}`);
    return this.d.view(c, 0, shape);
  }

  sliceRows(t: Tensor, start: number, count: number): Tensor {
    const c = this.d.tensor(t, 'sliceRows');
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > c.shape[0]) {
      throw invalidArgument(`sliceRows: rows ${start}..${start + count} outside 0..${c.shape[0]}`);
    }
    const rowBytes = c.rowElements * DTYPE_BYTES[c.dtype];
    const shape = [count, ...c.shape.slice(1)];
    // Kernels load 16-byte vectors: a view that would break that alignment is copied.
    if ((c.byteOffset + start * rowBytes) % 16 === 0) return this.d.view(c, start * rowBytes, shape);
    const out = this.d.empty(shape, c.dtype, 'sliceRows copy');
    this.d.addon.copy(out.ptr, c.ptr + BigInt(start * rowBytes), count * rowBytes, STREAM.compute, 'sliceRows copy');
    return out;
  }

  concatRows(parts: readonly Tensor[]): Tensor {
    if (parts.length === 0) throw invalidArgument('concatRows: nothing to concatenate');
    const cs = parts.map((p) => this.d.tensor(p, 'concatRows'));
    const first = cs[0];
    for (const c of cs) {
      if (c.dtype !== first.dtype || c.rowElements !== first.rowElements) throw invalidArgument('concatRows: parts differ in dtype or row shape');
    }
    const out = this.d.empty([cs.reduce((n, c) => n + c.shape[0], 0), ...first.shape.slice(1)], first.dtype, 'concatRows output');
    let offset = 0;
    for (const c of cs) {
      this.d.copy(out, offset, c, c.bytes, 'concatRows');
      offset += c.bytes;
    }
    return out;
  }

  /** One copy of x's rows into a buffer of `rows` rows: the rest is left as the allocator gives it (Backend.padRows). */
  padRows(x: Tensor, rows: number): Tensor {
    const c = this.d.tensor(x, 'padRows');
    if (!Number.isInteger(rows) || rows < c.shape[0]) throw invalidArgument(`padRows: ${rows} rows for a tensor of ${c.shape[0]}`);
    const out = this.d.empty([rows, ...c.shape.slice(1)], c.dtype, 'padRows output');
    this.d.copy(out, 0, c, c.bytes, 'padRows');
    return out;
  }

  // --- dense math ---------------------------------------------------------

  matmul(x: Tensor, w: Tensor, outDtype?: 'f32'): Tensor {
    return dense.matmul(this.d, x, w, outDtype);
  }
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return dense.rmsNorm(this.d, x, weight, eps);
  }
  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number): [Tensor, Tensor] {
    return dense.addRmsNorm(this.d, a, b, weight, eps);
  }
  createRopeTable(spec: RopeSpec): RopeTable {
    return dense.createRopeTable(this.d, spec);
  }
  ropeQkv(qkv: Tensor, positions: Tensor, table: RopeTable, numHeads: number, numKvHeads: number): [Tensor, Tensor, Tensor] {
    return dense.ropeQkv(this.d, qkv, positions, table, numHeads, numKvHeads);
  }
  siluGatePacked(gateUp: Tensor): Tensor {
    return dense.siluGatePacked(this.d, gateUp);
  }
  add(a: Tensor, b: Tensor): Tensor {
    return dense.add(this.d, a, b);
  }
  gatherRows(t: Tensor, indices: Tensor): Tensor {
    return dense.gatherRows(this.d, t, indices);
  }
  /** Random weights made on the device (benchmark models; see model-llama's randomLlamaWeights). */
  randomUniform(shape: readonly number[], scale: number, seed: number): Tensor {
    return dense.randomUniform(this.d, shape, scale, seed);
  }

  // --- KV pages -----------------------------------------------------------

  createKvStorage(location: PoolLocation, slots: number, geometry: KvGeometry): KvStorage {
    return kv.createKvStorage(this.d, location, slots, geometry);
  }
  createDigestStorage(rows: number, geometry: KvGeometry): DigestStorage {
    return kv.createDigestStorage(this.d, rows, geometry);
  }
  freeStorage(s: KvStorage | DigestStorage): void {
    if (s instanceof kv.CudaKvStorage) kv.freeKvStorage(this.d, s);
    else if (s instanceof kv.CudaDigestStorage) this.d.lifetimes.dispose(s.data);
    else throw invalidArgument('storage does not belong to the CUDA backend');
  }
  appendKv(storage: KvStorage, k: Tensor, v: Tensor, slots: Tensor, offsets: Tensor): void {
    kv.appendKv(this.d, storage, k, v, slots, offsets);
  }
  digestPages(storage: KvStorage, slots: Tensor, digests: DigestStorage, rows: Tensor, variant: DigestVariant): void {
    kv.digestPages(this.d, storage, slots, digests, rows, variant);
  }
  estimate(q: Tensor, digests: DigestStorage, rows: Tensor, groups: number, variant: DigestVariant): Tensor {
    return kv.estimate(this.d, q, digests, rows, groups, variant);
  }
  scatterI32(target: Tensor, updates: Tensor): void {
    select.scatterI32(this.d, target, updates);
  }
  selectResident(args: SelectResidentArgs): SelectResidentResult {
    return select.selectResident(this.d, args);
  }
  selectAttend(args: SelectAttendArgs): SelectAttendResult {
    return select.selectAttend(this.d, args);
  }
  recallListed(host: KvStorage, device: KvStorage, copies: Tensor): void {
    select.recallListed(this.d, host, device, copies);
  }
  placeTokenCells(args: PlaceTokenCellsArgs): void {
    tokenCells.placeTokenCells(this.d, args);
  }
  evictTokenCells(args: EvictTokenCellsArgs): Tensor {
    return tokenCells.evictTokenCells(this.d, args);
  }
  copyPages(src: KvStorage, srcSlots: readonly number[], dst: KvStorage, dstSlots: readonly number[]): CopyTicket {
    return this.copies.copy(src, srcSlots, dst, dstSlots);
  }
  awaitCopy(ticket: CopyTicket): void {
    this.copies.await(ticket);
  }
  pagedAttention(args: PagedAttentionArgs): { out: Tensor; tokenScores?: Tensor } {
    return pagedAttention(this.d, args);
  }
  causalAttention(args: CausalAttentionArgs): { out: Tensor; keyScores?: Tensor } {
    return causalAttention(this.d, args);
  }
  chunkAttention(args: ChunkAttentionArgs): Tensor {
    return chunkAttention(this.d, args);
  }

  // --- decoding -----------------------------------------------------------

  argmax(logits: Tensor): Tensor {
    return argmax(this.d, logits);
  }
  sample(logits: Tensor, params: SamplingParams, uniforms: Tensor): Tensor {
    return sample(this.d, logits, params, uniforms);
  }
}
