import type { Backend, CacheOptions, KvCacheInit } from '@arkvale/core';
import { KvCache, poolPagesFor, resolveCacheOptions } from '@arkvale/core';
import { LlamaForward } from './forward.js';
import type { BatchResult, GenerationRequest } from './generate.js';
import { checkGenerationRequest, contextLength, generateBatch } from './generate.js';
import type { ModelDir } from './model-dir.js';
import { kvGeometry, openModelDir } from './model-dir.js';
import type { LoadProgress } from './weights.js';

/** The KV policy and its knobs; pool sizes are derived from the work. */
export type CachePlan = Omit<CacheOptions, 'devicePages' | 'hostPages'> & {
  readonly pageSize: number;
  readonly devicePages?: number;
  readonly hostPages?: number;
};

export interface LoadEngineOptions {
  readonly onProgress?: LoadProgress;
}

/** A loaded model on a backend, ready to run any KV policy. */
export class LlamaEngine {
  private constructor(
    readonly model: ModelDir,
    readonly forward: LlamaForward,
  ) {}

  static async load(dir: string, backend: Backend, options: LoadEngineOptions = {}): Promise<LlamaEngine> {
    const model = openModelDir(dir);
    const weights = await model.loadWeights(backend, { onProgress: options.onProgress });
    return new LlamaEngine(model, new LlamaForward(model.config, weights, backend));
  }

  get backend(): Backend {
    return this.forward.backend;
  }

  /**
   * A cache for `sequences` sequences of up to `tokens` tokens each. Pools default to
   * what that work needs; explicit sizes are checked like any other option.
   */
  createCache(plan: CachePlan, tokens: number, sequences = 1): KvCache {
    // f32 on the CPU backends: bytes moved are counted as stored.
    const geometry = kvGeometry(this.model.config, plan.pageSize, 4);
    const resolved = resolveCacheOptions(geometry, { ...plan, devicePages: 1 });
    const pools = poolPagesFor(geometry, resolved, tokens, sequences);
    const init: KvCacheInit = {
      geometry,
      options: { ...plan, devicePages: plan.devicePages ?? pools.devicePages, hostPages: plan.hostPages ?? pools.hostPages },
      backend: this.backend,
    };
    return new KvCache(init);
  }

  /** Generates for the requests on a fresh cache of this plan (pages freed at the end). */
  generate(requests: readonly GenerationRequest[], plan: CachePlan): BatchResult {
    for (const r of requests) checkGenerationRequest(this.forward, r);
    const longest = Math.min(this.forward.maxPositions, Math.max(...requests.map((r) => contextLength(r) + (r.maxTokens ?? 64))));
    const cache = this.createCache(plan, longest, requests.length);
    return generateBatch(this.forward, this.model.tokenizer, cache, requests);
  }
}
