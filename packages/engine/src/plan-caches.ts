import { KvCache, type KvGeometry, type PageStore, type PolicyName } from '@arkvale/core';
import type { ModelCache, ModelForward } from '@arkvale/model-llama';
import type { ResolvedEngineConfig } from './config.js';
import { planKey, planOptions } from './prepare.js';

/**
 * One KV cache per plan (policy @ budget), made when first asked for, all drawing on
 * one page store: a request's plan decides its pages, not a share of memory set
 * aside for its policy. A tensor-parallel model's caches are one per rank
 * (`RankedKvCache`), each rank's plans drawing on that rank's store.
 */
export class PlanCaches {
  private readonly caches = new Map<string, ModelCache>();
  /** Rank 0's store (every rank's holds as many pages). */
  readonly store: PageStore;

  constructor(
    private readonly config: ResolvedEngineConfig,
    /** The whole model's KV geometry (a tensor-parallel rank's pages hold its share of the heads). */
    private readonly geometry: KvGeometry,
    private readonly forward: ModelForward,
    /** The default plan's cache, when the caller made it. */
    initial?: ModelCache,
  ) {
    if (initial) this.caches.set(planKey(config.policy, config.budgetTokens), initial);
    this.store = this.get(config.policy, config.budgetTokens).store;
  }

  get(policy: PolicyName, budget: number): ModelCache {
    const key = planKey(policy, budget);
    let cache = this.caches.get(key);
    if (!cache) {
      cache = this.make(policy, budget, this.caches.values().next().value);
      this.caches.set(key, cache);
    }
    return cache;
  }

  /** A plan's cache, on the stores of `first` (the first plan's cache) when there is one. */
  private make(policy: PolicyName, budget: number, first: ModelCache | undefined): ModelCache {
    const options = planOptions(this.config, policy, budget);
    const { prefixCache } = this.config;
    const f = this.forward;
    if (f.createPlanCache) return f.createPlanCache(this.geometry, options, prefixCache, first);
    return new KvCache({ geometry: this.geometry, options, backend: f.backend, store: first?.store, prefixCache });
  }

  entries(): [string, ModelCache][] {
    return [...this.caches.entries()];
  }

  all(): ModelCache[] {
    return [...this.caches.values()];
  }

  /** Frees every sequence and the shared store's memory (the first cache owns the store: it closes last). */
  close(): void {
    for (const cache of [...this.caches.values()].reverse()) cache.close();
    this.caches.clear();
  }
}
