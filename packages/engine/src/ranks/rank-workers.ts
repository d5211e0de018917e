import {
  ArkvaleError,
  invalidArgument,
  KvCache,
  SharedMemoryCommunicator,
  sharedMemoryGroup,
  type Backend,
  type CacheOptions,
  type Communicator,
  type KvGeometry,
} from '@arkvale/core';
import {
  kvGeometry,
  LlamaForward,
  MLP_CHUNK_ROWS,
  openModelDir,
  RankedKvCache,
  shapeConfig,
  storedKvConfig,
  tensorParallelConfig,
  tensorParallelLayout,
  type LlamaConfig,
  type ModelCache,
  type ModelForward,
  type PageFormat,
  type RowBatch,
} from '@arkvale/model-llama';
import { loadShare, type RankSource } from './load-share.js';
import { processLink, threadLink, type WorkerLink } from './worker-link.js';
import type { FromRank, RankUsage, ToRank, WireBatch } from './rank-protocol.js';

/**
 * A tensor-parallel model with one rank per worker (docs/DESIGN.md, "Tensor
 * parallelism"): rank 0 here, on the caller's backend, under the engine's one
 * scheduler; ranks 1 to N-1 each in a worker with its own backend, its share of the
 * weights and its caches. On the CPU the workers are threads whose collectives meet in
 * shared memory (`SharedMemoryCommunicator`): the ranks compute at once and give the
 * same values as one thread holding them all. On CUDA they are processes, one GPU each
 * (the addon holds one GPU per process), joined by NCCL (`NcclCommunicator`); that path
 * has not run on a machine with several GPUs.
 *
 * To a scheduler it is one `ModelForward`: its plan caches are `RankedKvCache`s whose
 * rank 0 is here and whose other ranks are sent every change; `forwardRows` sends the
 * pass's rows to the workers (each segment's attention named by its `ref`), then runs
 * rank 0's, which the collectives join to theirs. A worker that fails is reported: on
 * the CPU it breaks the group, so the pass under way throws too; every later pass
 * throws, saying which rank failed and why.
 */
export class RankWorkers implements ModelForward {
  private failure: string | null = null;
  private nextCache = 1;
  private nextTicket = 1;
  /** Each plan cache's number on the workers. */
  private readonly cacheIds = new WeakMap<ModelCache, number>();

  private constructor(
    /** The whole model's config. */
    readonly config: LlamaConfig,
    /** Each rank's share of the heads and MLP columns (tensorParallelConfig). */
    readonly rankConfig: LlamaConfig,
    private readonly rank0: LlamaForward,
    private readonly workers: readonly WorkerLink[],
  ) {
    for (const w of workers) {
      w.on((m) => {
        if (m.type === 'fatal') this.failure ??= m.message;
      });
      w.onDeath((why) => (this.failure ??= why));
    }
  }

  /**
   * Starts ranks 1 to `size` - 1 in workers and loads rank 0's share on `backend`, all at
   * once: threads for a CPU backend; for a CUDA one, processes on the next GPUs of
   * CUDA_VISIBLE_DEVICES (default 0 to size - 1; rank 0 is the backend's, the first).
   */
  static async start(source: RankSource, size: number, backend: Backend, maxPositions?: number): Promise<RankWorkers> {
    const config = source.modelDir !== undefined ? openModelDir(source.modelDir).config : shapeConfig(source.shape!);
    tensorParallelLayout(config, 0, size);
    if (size < 2) throw invalidArgument(`rank workers need two or more ranks, got ${size}`);
    const positions = maxPositions ?? config.maxPositionEmbeddings;
    const base = { modelDir: source.modelDir, shape: source.shape, size, maxPositions: positions };
    let workers: WorkerLink[];
    let join: () => Communicator;
    if (backend.name === 'cuda') {
      const devices = process.env.CUDA_VISIBLE_DEVICES?.split(',') ?? Array.from({ length: size }, (_, i) => String(i));
      if (devices.length < size) throw invalidArgument(`tensor-parallel size ${size} needs ${size} GPUs; CUDA_VISIBLE_DEVICES names ${devices.length}`);
      const cuda = backend as Backend & { communicator(id: Uint8Array, size: number, rank: number): Communicator };
      const { ncclUniqueId } = await import('@arkvale/cuda-binding');
      const ncclId = ncclUniqueId((backend as unknown as { addon: Parameters<typeof ncclUniqueId>[0] }).addon);
      workers = Array.from({ length: size - 1 }, (_, i) => processLink({ ...base, rank: i + 1, ncclId, dtype: backend.dtype }, devices[i + 1]));
      join = () => cuda.communicator(ncclId, size, 0);
    } else {
      const shared = sharedMemoryGroup(size);
      workers = Array.from({ length: size - 1 }, (_, i) => threadLink({ ...base, rank: i + 1, shared }));
      join = () => new SharedMemoryCommunicator(shared, 0, size, backend);
    }
    const until = (type: 'joining' | 'ready') =>
      Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (m: FromRank) => {
                if (m.type === type) resolve();
                else if (m.type === 'fatal') reject(new ArkvaleError('INTERNAL', m.message));
                else return;
                w.off(onMessage);
              };
              w.on(onMessage);
              w.onDeath((why) => reject(new ArkvaleError('INTERNAL', why)));
            }),
        ),
      );
    try {
      const weights = await loadShare(source, config, 0, size, backend);
      // Joining NCCL blocks this thread until every rank has: only once each GPU is up.
      if (backend.name === 'cuda') await until('joining');
      const comm = join();
      await until('ready');
      const rankConfig = tensorParallelConfig(config, size);
      return new RankWorkers(config, rankConfig, new LlamaForward(rankConfig, weights, backend, positions, MLP_CHUNK_ROWS, comm), workers);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
  }

  get size(): number {
    return this.workers.length + 1;
  }
  get backend(): Backend {
    return this.rank0.backend;
  }
  get scale(): number {
    return this.rank0.scale;
  }
  get maxPositions(): number {
    return this.rank0.maxPositions;
  }
  get mlpChunkRows(): number {
    return this.rank0.mlpChunkRows;
  }
  get paddingRows(): number {
    return this.rank0.paddingRows;
  }

  /** The whole model's config as the ranks store KV pages (`storedKvConfig`). */
  get storedConfig(): LlamaConfig {
    return storedKvConfig(this.config, this.size);
  }

  /** Rank 0's communicator (a bench times its collectives through it). */
  get communicator(): Communicator {
    return this.rank0.communicator!;
  }

  checkLength(tokens: number, what?: string): void {
    this.rank0.checkLength(tokens, what);
  }

  reservePadding(rows: number): void {
    this.rank0.reservePadding(rows);
    this.send({ op: 'reservePadding', rows });
  }

  createPlanCache(page: PageFormat, options: CacheOptions, prefixCache: boolean, first?: ModelCache): ModelCache {
    const cache = this.nextCache++;
    const firstId = first === undefined ? null : (this.cacheIds.get(first) ?? null);
    if (first !== undefined && (firstId === null || !(first instanceof RankedKvCache)))
      throw invalidArgument('a plan cache can share only the stores of another cache of these ranks');
    this.send({ op: 'createCache', cache, page, options, prefixCache, first: firstId });
    const geometry: KvGeometry = kvGeometry(this.rankConfig, page.pageSize, this.backend.dtype === 'f32' ? 4 : 2, page.kvDtype);
    const local = new KvCache({ geometry, options, backend: this.backend, store: first?.ranks[0].store, prefixCache });
    const ranked = new RankedKvCache([local], { cache, send: (call, args, handle) => this.send({ op: 'change', cache, call, args, handle }) });
    this.cacheIds.set(ranked, cache);
    return ranked;
  }

  forwardRows(batch: RowBatch): ReturnType<LlamaForward['forwardRows']> {
    const segments = batch.segments.map((s) => {
      if (!s.ref)
        throw invalidArgument('a pass over ranks in workers needs each segment to name its attention (RowSegment.ref): attend through a cache of these ranks');
      return { tokens: s.tokens, positions: s.positions, ref: s.ref };
    });
    const { blocks, logitRows, logitBlock, padTo, logitPad } = batch;
    const wire: WireBatch = { segments, blocks, logitRows, logitBlock, padTo, logitPad };
    this.send({ op: 'pass', batch: wire });
    return this.rank0.forwardRows({ ...batch, inputs: undefined });
  }

  /** Each worker's pools now, after everything it was sent (ranks 1 to N-1, in order). */
  usage(): Promise<RankUsage[]> {
    const ticket = this.nextTicket++;
    return Promise.all(
      this.workers.map(
        (w) =>
          new Promise<RankUsage>((resolve) => {
            const onMessage = (m: FromRank) => {
              if (m.type !== 'usage' || m.ticket !== ticket) return;
              w.off(onMessage);
              resolve(m.usage);
            };
            w.on(onMessage);
            w.post({ op: 'usage', ticket });
          }),
      ),
    );
  }

  /** Ends the workers (after what they were sent) and frees rank 0's weights. */
  dispose(): void {
    for (const w of this.workers) w.post({ op: 'close' });
    this.rank0.dispose();
  }

  private send(m: ToRank): void {
    if (this.failure) throw new ArkvaleError('INTERNAL', this.failure);
    for (const w of this.workers) w.post(m);
  }
}
