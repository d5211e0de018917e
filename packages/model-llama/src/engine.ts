import type { Backend, CacheOptions, KvCacheInit, KvDtype, KvGeometry } from '@arkvale/core';
import { InProcessGroup, invalidArgument, KvCache, poolPagesFor, resolveCacheOptions } from '@arkvale/core';
import { checkCacheFits, checkWeightsFit, devicePageCapacity } from './device-memory.js';
import { LlamaForward, type ModelForward } from './forward.js';
import type { ModelCache } from './model-cache.js';
import type { ModelDir } from './model-dir.js';
import { countParameters, kvGeometry, openModelDir } from './model-dir.js';
import { tensorParallelLayout } from './shard.js';
import { TensorParallelLlama } from './tensor-parallel.js';
import type { LoadProgress } from './weights.js';

/** The KV policy and its knobs; pool sizes are derived from the work. */
export type CachePlan = Omit<CacheOptions, 'devicePages' | 'hostPages'> & {
  readonly pageSize: number;
  /** How pages store K and V: 'auto' (default), the backend's dtype; 'fp8', e4m3 pages (kvGeometry). */
  readonly kvDtype?: KvDtype;
  readonly devicePages?: number;
  readonly hostPages?: number;
};

export interface LoadEngineOptions {
  readonly onProgress?: LoadProgress;
  /**
   * Share of the device's memory the engine may use (weights, activations, KV pool)
   * on backends with their own memory; the rest is left to other processes. Default 0.9.
   */
  readonly gpuMemoryUtilization?: number;
}

/** The cache a forward pass attends through: a `KvCache` for one rank, a `ModelCache` over the ranks of a tensor-parallel one. */
export type CacheOf<F extends ModelForward> = F extends LlamaForward ? KvCache : ModelCache;

/**
 * A loaded model on a backend, ready to run any KV policy: its weights, forward pass
 * and caches. Generation loops live in @arkvale/engine (generateBatch, the async engines).
 * `F` is what runs its passes: one `LlamaForward` (`load`), or a `TensorParallelLlama`
 * (`loadTensorParallel`).
 */
export class LlamaEngine<F extends ModelForward = LlamaForward> {
  private constructor(
    readonly model: ModelDir,
    readonly forward: F,
    readonly gpuMemoryUtilization: number,
  ) {}

  static async load(dir: string, backend: Backend, options: LoadEngineOptions = {}): Promise<LlamaEngine> {
    const utilization = checkUtilization(options.gpuMemoryUtilization);
    const model = openModelDir(dir);
    // A model that cannot fit fails before a byte is uploaded.
    checkWeightsFit(backend, model.config, countParameters(model.config), utilization);
    const weights = await model.loadWeights(backend, { onProgress: options.onProgress });
    return new LlamaEngine(model, new LlamaForward(model.config, weights, backend), utilization);
  }

  /**
   * The model split over tensor-parallel ranks, `backends[r]` being rank r's (one backend
   * may serve several ranks; docs/DESIGN.md, "Tensor parallelism"). Each rank reads only
   * its share of the checkpoint. The ranks run in this thread, their collectives answered
   * through the host (`InProcessGroup`).
   */
  static async loadTensorParallel(dir: string, backends: readonly Backend[], options: LoadEngineOptions = {}): Promise<LlamaEngine<TensorParallelLlama>> {
    const utilization = checkUtilization(options.gpuMemoryUtilization);
    const model = openModelDir(dir);
    const size = backends.length;
    // A size the heads, MLP or vocabulary do not divide is refused before anything loads.
    tensorParallelLayout(model.config, 0, size);
    for (const b of new Set(backends)) {
      const ranks = backends.filter((x) => x === b).length;
      checkWeightsFit(b, model.config, Math.ceil((countParameters(model.config) * ranks) / size), utilization);
    }
    const shards = [];
    for (let rank = 0; rank < size; rank++) {
      // Progress over the whole checkpoint: each rank reads its share of every tensor.
      const onProgress = options.onProgress && ((loaded: number, total: number) => options.onProgress!(rank * total + loaded, size * total));
      shards.push(await model.loadWeights(backends[rank], { onProgress, shard: { rank, size } }));
    }
    return new LlamaEngine(model, TensorParallelLlama.fromShards(model.config, shards, new InProcessGroup(backends)), utilization);
  }

  /**
   * The cache geometry of this model on this backend (KV pages in the backend's dtype, or
   * fp8 pages); split over ranks, every rank's KV heads (`TensorParallelLlama.storedConfig`).
   */
  geometry(pageSize: number, kvDtype?: KvDtype): KvGeometry {
    return kvGeometry(this.forward.storedConfig ?? this.model.config, pageSize, this.backend.dtype === 'f32' ? 4 : 2, kvDtype);
  }

  /**
   * Device KV pages that fit in the memory left after the weights and the activations
   * of a `tokens`-row pass, within the utilization share, with the digests of those
   * pages and of the host pages `hostPagesFor` pairs with them; undefined on backends
   * that use host memory. What a long-running server sizes its one pool from.
   */
  devicePageCapacity(pageSize: number, tokens: number, hostPagesFor?: (devicePages: number) => number, kvDtype?: KvDtype): number | undefined {
    return devicePageCapacity(this.backend, this.model.config, this.geometry(pageSize, kvDtype), this.gpuMemoryUtilization, tokens, hostPagesFor);
  }

  get backend(): Backend {
    return this.forward.backend;
  }

  /**
   * A cache for `sequences` sequences of up to `tokens` tokens each. Pools default to
   * what that work needs; explicit sizes are checked like any other option.
   */
  createCache(plan: CachePlan, tokens: number, sequences = 1): CacheOf<F> {
    const geometry = this.geometry(plan.pageSize, plan.kvDtype);
    const resolved = resolveCacheOptions(geometry, { ...plan, devicePages: 1 });
    const pools = poolPagesFor(geometry, resolved, tokens, sequences);
    const options = { ...plan, devicePages: plan.devicePages ?? pools.devicePages, hostPages: plan.hostPages ?? pools.hostPages };
    // The ranks' pages together are the whole model's: the memory check is the same.
    checkCacheFits(this.backend, this.model.config, geometry, resolveCacheOptions(geometry, options), tokens * sequences, this.gpuMemoryUtilization);
    const forward: ModelForward = this.forward;
    if (forward instanceof TensorParallelLlama) return forward.createCache(options, tokens, sequences) as CacheOf<F>;
    const init: KvCacheInit = { geometry, options, backend: this.backend };
    return new KvCache(init) as CacheOf<F>;
  }
}

function checkUtilization(u = 0.9): number {
  if (!(u > 0 && u <= 1)) throw invalidArgument(`GPU memory utilization must be in (0, 1], got ${String(u)}`);
  return u;
}
