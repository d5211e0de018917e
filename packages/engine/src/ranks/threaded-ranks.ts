import { Worker } from 'node:worker_threads';
import {
  ArkvaleError,
  invalidArgument,
  KvCache,
  SharedMemoryCommunicator,
  sharedMemoryGroup,
  type Backend,
  type CacheOptions,
  type KvDtype,
  type KvGeometry,
} from '@arkvale/core';
import {
  kvGeometry,
  LlamaForward,
  MLP_CHUNK_ROWS,
  openModelDir,
  RankedKvCache,
  shapeConfig,
  tensorParallelConfig,
  tensorParallelLayout,
  type LlamaConfig,
  type ModelCache,
  type ModelForward,
  type RowBatch,
} from '@arkvale/model-llama';
import { loadShare, type RankSource } from './load-share.js';
import type { FromRank, RankInit, RankUsage, ToRank, WireBatch } from './rank-protocol.js';

/** The rank worker script beside this file; from the TypeScript sources (tests), the built one. */
function workerScript(): URL {
  const ts = import.meta.url.endsWith('.ts');
  return new URL(ts ? '../../dist/ranks/rank-worker.js' : './rank-worker.js', import.meta.url);
}

/**
 * A tensor-parallel model with one rank per thread (docs/DESIGN.md, "Tensor
 * parallelism"): rank 0 here, on the caller's backend, under the engine's one
 * scheduler; ranks 1 to N-1 each in a worker thread with its own CPU backend, its share
 * of the weights and its caches. The ranks' collectives meet in shared memory
 * (`SharedMemoryCommunicator`), so the ranks compute at once and give the same values as
 * one thread holding them all.
 *
 * To a scheduler it is one `ModelForward`: its plan caches are `RankedKvCache`s whose
 * rank 0 is here and whose other ranks are sent every change; `forwardRows` sends the
 * pass's rows to the workers (each segment's attention named by its `ref`), then runs
 * rank 0's, which the collectives join to theirs. A worker that fails breaks the group:
 * the pass under way and every later one throws, saying which rank failed and why.
 */
export class ThreadedRanks implements ModelForward {
  private failure: string | null = null;
  private nextCache = 1;
  private nextTicket = 1;
  /** Each plan cache's number on the workers. */
  private readonly cacheIds = new WeakMap<ModelCache, number>();

  private constructor(
    /** The whole model's config. */
    readonly config: LlamaConfig,
    private readonly rankConfig: LlamaConfig,
    private readonly rank0: LlamaForward,
    private readonly workers: readonly Worker[],
  ) {
    workers.forEach((w, i) => {
      w.on('message', (m: FromRank) => {
        if (m.type === 'fatal') this.failure ??= m.message;
      });
      w.on('error', (e) => (this.failure ??= `tensor-parallel rank ${i + 1}'s thread failed: ${e.message}`));
      // A worker never keeps the process alive.
      w.unref();
    });
  }

  /** Starts ranks 1 to `size` - 1 in worker threads and loads rank 0's share on `backend` (a CPU backend), all at once. */
  static async start(source: RankSource, size: number, backend: Backend, maxPositions?: number): Promise<ThreadedRanks> {
    const config = source.modelDir !== undefined ? openModelDir(source.modelDir).config : shapeConfig(source.shape!);
    tensorParallelLayout(config, 0, size);
    if (size < 2) throw invalidArgument(`ranks in threads need two or more, got ${size}`);
    const positions = maxPositions ?? config.maxPositionEmbeddings;
    const shared = sharedMemoryGroup(size);
    const workers = Array.from({ length: size - 1 }, (_, i) => {
      const init: RankInit = { modelDir: source.modelDir, shape: source.shape, rank: i + 1, size, maxPositions: positions, shared };
      return new Worker(workerScript(), { workerData: init });
    });
    const ready = workers.map(
      (w, i) =>
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: FromRank) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'fatal') reject(new ArkvaleError('INTERNAL', m.message));
            if (m.type !== 'closed') w.off('message', onMessage);
          };
          w.on('message', onMessage);
          w.once('error', (e) => reject(new ArkvaleError('INTERNAL', `tensor-parallel rank ${i + 1}'s thread failed: ${e.message}`)));
          w.once('exit', (code) => reject(new ArkvaleError('INTERNAL', `tensor-parallel rank ${i + 1}'s thread exited (code ${code}) before it was ready`)));
        }),
    );
    try {
      const weights = await loadShare(source, config, 0, size, backend);
      await Promise.all(ready);
      const rankConfig = tensorParallelConfig(config, size);
      const comm = new SharedMemoryCommunicator(shared, 0, size, backend);
      return new ThreadedRanks(config, rankConfig, new LlamaForward(rankConfig, weights, backend, positions, MLP_CHUNK_ROWS, comm), workers);
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

  /** The whole model's config as the ranks store KV pages (TensorParallelLlama.storedConfig). */
  get storedConfig(): LlamaConfig {
    return { ...this.config, numKvHeads: this.rankConfig.numKvHeads * this.size };
  }

  checkLength(tokens: number, what?: string): void {
    this.rank0.checkLength(tokens, what);
  }

  reservePadding(rows: number): void {
    this.rank0.reservePadding(rows);
    this.send({ op: 'reservePadding', rows });
  }

  createPlanCache(
    page: { readonly pageSize: number; readonly kvDtype?: KvDtype },
    options: CacheOptions,
    prefixCache: boolean,
    first?: ModelCache,
  ): ModelCache {
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
        throw invalidArgument('a pass over ranks in threads needs each segment to name its attention (RowSegment.ref): attend through a cache of these ranks');
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
              w.off('message', onMessage);
              resolve(m.usage);
            };
            w.on('message', onMessage);
            w.postMessage({ op: 'usage', ticket } satisfies ToRank);
          }),
      ),
    );
  }

  /** Ends the workers (after what they were sent) and frees rank 0's weights. */
  dispose(): void {
    for (const w of this.workers) w.postMessage({ op: 'close' } satisfies ToRank);
    this.rank0.dispose();
  }

  private send(m: ToRank): void {
    if (this.failure) throw new ArkvaleError('INTERNAL', this.failure);
    for (const w of this.workers) w.postMessage(m);
  }
}
