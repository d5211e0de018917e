import type { Backend, CacheOptions, KvDtype, KvGeometry, RankProgram, Tensor } from '@arkvale/core';
import { type InProcessGroup, invalidArgument, KvCache, poolPagesFor, resolveCacheOptions, runLockstep } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import type { CachePlan } from './engine.js';
import { LlamaForward, type ModelForward, type PageFormat, type PrefillRequest, type RowBatch } from './forward.js';
import { kvGeometry } from './model-dir.js';
import { RankedKvCache } from './ranked-cache.js';
import { shardLlamaWeights, storedKvConfig, tensorParallelConfig } from './shard.js';
import type { ModelCache } from './model-cache.js';
import type { LlamaWeights } from './weights.js';

/**
 * A tensor-parallel model whose ranks all live in this thread, each with its backend
 * (`group.backends`, one backend may serve several), run in lockstep with the group's
 * collectives (`runLockstep`). Each rank has its own `KvCache` over its KV heads
 * (`createCaches`); the ranks' caches are used together: admitted, stepped and freed
 * in the same order, so their sequence ids agree. This is the reference (and the CPU
 * test) of what a runtime with one worker per GPU runs, each worker a `LlamaForward`
 * over its shard with a `Communicator`.
 *
 * As a `ModelForward` it is the whole model to a scheduler: `forwardRows` runs one batch
 * on every rank (each segment attends through a `ModelCache` with the rank, such as
 * `createCache`'s), and the logits come back on rank 0's backend.
 */
export class TensorParallelLlama implements ModelForward {
  private constructor(
    /** The whole model's config. */
    readonly config: LlamaConfig,
    /** Each rank's share (tensorParallelConfig). */
    readonly rankConfig: LlamaConfig,
    readonly ranks: readonly LlamaForward[],
    readonly group: InProcessGroup,
  ) {}

  /** Shards `weights`, loaded whole on `source`, over the ranks of `group`, each onto its backend. */
  static fromWeights(
    config: LlamaConfig,
    weights: LlamaWeights,
    source: Backend,
    group: InProcessGroup,
    maxPositions = config.maxPositionEmbeddings,
  ): TensorParallelLlama {
    const shards = group.backends.map((backend, r) => shardLlamaWeights(weights, config, r, group.size, source, backend));
    return TensorParallelLlama.fromShards(config, shards, group, maxPositions);
  }

  /** From each rank's share of the weights on its backend (`shardLlamaWeights`, or `loadLlamaWeights` with `shard`), `shards[r]` being rank r's. */
  static fromShards(
    config: LlamaConfig,
    shards: readonly LlamaWeights[],
    group: InProcessGroup,
    maxPositions = config.maxPositionEmbeddings,
  ): TensorParallelLlama {
    if (shards.length !== group.size) throw invalidArgument(`${shards.length} shards for a group of ${group.size}`);
    shards.forEach((w, r) => {
      if (w.shard?.rank !== r || w.shard.size !== group.size) {
        throw invalidArgument(`rank ${r} of ${group.size} was given weights of ${w.shard ? `rank ${w.shard.rank} of ${w.shard.size}` : 'the whole model'}`);
      }
    });
    const rankConfig = tensorParallelConfig(config, group.size);
    const ranks = shards.map((w, r) => new LlamaForward(rankConfig, w, group.backends[r], maxPositions));
    return new TensorParallelLlama(config, rankConfig, ranks, group);
  }

  get size(): number {
    return this.ranks.length;
  }

  get scale(): number {
    return this.ranks[0].scale;
  }

  /** Rank 0's backend, where `forwardRows` returns the logits. */
  get backend(): Backend {
    return this.ranks[0].backend;
  }

  get maxPositions(): number {
    return this.ranks[0].maxPositions;
  }

  get mlpChunkRows(): number {
    return this.ranks[0].mlpChunkRows;
  }

  get paddingRows(): number {
    return this.ranks[0].paddingRows;
  }

  reservePadding(rows: number): void {
    for (const f of this.ranks) f.reservePadding(rows);
  }

  checkLength(tokens: number, what?: string): void {
    this.ranks[0].checkLength(tokens, what);
  }

  /** The whole model's config as its ranks store KV pages (`storedKvConfig`): what pools are planned on. */
  get storedConfig(): LlamaConfig {
    return storedKvConfig(this.config, this.size);
  }

  /** Each rank's cache geometry: every layer, the rank's query and KV heads. */
  geometry(pageSize: number, kvDtype?: KvDtype): KvGeometry {
    return kvGeometry(this.rankConfig, pageSize, this.ranks[0].backend.dtype === 'f32' ? 4 : 2, kvDtype);
  }

  /** One cache per rank on its backend, for `sequences` sequences of up to `tokens` tokens (pools as `LlamaEngine.createCache` sizes them). */
  createCaches(plan: CachePlan, tokens: number, sequences = 1): KvCache[] {
    const geometry = this.geometry(plan.pageSize, plan.kvDtype);
    const pools = poolPagesFor(geometry, resolveCacheOptions(geometry, { ...plan, devicePages: 1 }), tokens, sequences);
    const options = { ...plan, devicePages: plan.devicePages ?? pools.devicePages, hostPages: plan.hostPages ?? pools.hostPages };
    return this.ranks.map((f) => new KvCache({ geometry, options, backend: f.backend }));
  }

  /** `createCaches` as one cache (`RankedKvCache`), what `forwardRows`'s segments attend through; one rank's cache for a group of one. */
  createCache(plan: CachePlan, tokens: number, sequences = 1): ModelCache {
    const caches = this.createCaches(plan, tokens, sequences);
    return caches.length === 1 ? caches[0] : new RankedKvCache(caches);
  }

  /** One plan's cache (`ModelForward.createPlanCache`): a `KvCache` per rank, each on the store of `first`'s same rank. */
  createPlanCache(page: PageFormat, options: CacheOptions, prefixCache: boolean, first?: ModelCache): ModelCache {
    const geometry = this.geometry(page.pageSize, page.kvDtype);
    const stores = first instanceof RankedKvCache ? first.ranks.map((c) => c.store) : [];
    return new RankedKvCache(this.ranks.map((f, r) => new KvCache({ geometry, options, backend: f.backend, store: stores[r], prefixCache })));
  }

  /** Admits a sequence of `tokens` prompt tokens to every rank's cache; returns its id (the same on every rank). */
  admit(caches: readonly KvCache[], tokens: number): number {
    const ids = this.caches(caches).map((cache) => cache.admit(tokens));
    if (ids.some((id) => id !== ids[0])) throw invalidArgument(`the ranks' caches gave sequence ids ${ids.join(', ')}: they must be used together`);
    return ids[0];
  }

  free(caches: readonly KvCache[], id: number): void {
    for (const cache of this.caches(caches)) cache.free(id);
  }

  /** `LlamaForward.prefill` over every rank; returns rank 0's logits [N, vocab] (every rank has the same). */
  prefill(caches: readonly KvCache[], requests: readonly PrefillRequest[]): Tensor {
    const logitRows: number[] = [];
    let row = 0;
    for (const r of requests) logitRows.push((row += r.tokens.length) - 1);
    return this.first(
      this.forwardRanks(
        this.caches(caches).map((cache) => ({
          segments: requests.map((r) => ({
            tokens: r.tokens,
            positions: r.tokens.map((_, i) => i),
            attend: (layer, q, k, v) => cache.prefillLayer(r.id, layer, q, k, v, this.scale),
          })),
          logitRows,
        })),
      ),
    );
  }

  /** `LlamaForward.decode` over every rank; returns rank 0's logits [B, vocab]. */
  decode(caches: readonly KvCache[], ids: readonly number[], tokens: readonly number[]): Tensor {
    return this.first(
      this.forwardRanks(
        this.caches(caches).map((cache): RowBatch => {
          const step = cache.beginStep(ids);
          return {
            segments: [{ tokens, positions: step.positions, attend: (layer, q, k, v) => cache.decodeLayer(step, layer, q, k, v, this.scale) }],
            logitRows: tokens.map((_, i) => i),
          };
        }),
      ),
    );
  }

  /**
   * One pass of `batch` on every rank: each segment's `attend` is called with the rank
   * whose heads it gets. The batch's `inputs` must be absent (each rank makes its own).
   * Returns the logits on rank 0's backend.
   */
  forwardRows(batch: RowBatch): Tensor {
    if (batch.inputs) throw invalidArgument("a tensor-parallel pass makes each rank's inputs itself: give none (stepInputs is one backend's)");
    return this.first(
      this.forwardRanks(
        this.ranks.map((_, r) => ({
          ...batch,
          segments: batch.segments.map((s) => ({ ...s, attend: (l: number, q: Tensor, k: Tensor, v: Tensor) => s.attend(l, q, k, v, r) })),
        })),
      ),
    );
  }

  /** One pass of every rank, `batches[r]` being rank r's (its segments attend its cache); returns each rank's logits, the same values on every rank. */
  forwardRanks(batches: readonly RowBatch[]): Tensor[] {
    if (batches.length !== this.size) throw invalidArgument(`${batches.length} row batches for ${this.size} ranks`);
    const programs = (): RankProgram<Tensor>[] => this.ranks.map((f, r) => f.forwardRowsProgram(batches[r]));
    // The pass inside a tidy scope of every backend (nested once per distinct backend).
    const backends = [...new Set(this.ranks.map((f) => f.backend))];
    const run = backends.reduce<() => Tensor[]>(
      (inner, b) => () => b.tidy(inner),
      () => runLockstep(programs(), this.group),
    );
    return run();
  }

  /** Returns every rank's weights and padding rows to its backend. */
  dispose(): void {
    for (const f of this.ranks) f.dispose();
  }

  private caches(caches: readonly KvCache[]): readonly KvCache[] {
    if (caches.length !== this.size) throw invalidArgument(`${caches.length} caches for ${this.size} ranks: one per rank`);
    return caches;
  }

  private first(logits: Tensor[]): Tensor {
    logits.slice(1).forEach((t, r) => this.ranks[r + 1].backend.dispose(t));
    return logits[0];
  }
}
