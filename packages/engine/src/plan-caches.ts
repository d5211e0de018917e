import { KvCache, type Backend, type KvGeometry, type PageStore, type PolicyName } from '@arkvale/core';
import type { ResolvedEngineConfig } from './config.js';
import { planKey, planOptions } from './prepare.js';

/**
 * One KV cache per plan (policy @ budget), made when first asked for, all drawing on
 * one page store: a request's plan decides its pages, not a share of memory set
 * aside for its policy.
 */
export class PlanCaches {
  private readonly caches = new Map<string, KvCache>();
  readonly store: PageStore;

  constructor(
    private readonly config: ResolvedEngineConfig,
    private readonly geometry: KvGeometry,
    private readonly backend: Backend,
    /** The default plan's cache, when the caller made it. */
    initial?: KvCache,
  ) {
    if (initial) this.caches.set(planKey(config.policy, config.budgetTokens), initial);
    this.store = this.get(config.policy, config.budgetTokens).store;
  }

  get(policy: PolicyName, budget: number): KvCache {
    const key = planKey(policy, budget);
    let cache = this.caches.get(key);
    if (!cache) {
      const store = this.caches.size ? this.store : undefined;
      cache = new KvCache({
        geometry: this.geometry,
        options: planOptions(this.config, policy, budget),
        backend: this.backend,
        store,
        prefixCache: this.config.prefixCache,
      });
      this.caches.set(key, cache);
    }
    return cache;
  }

  entries(): [string, KvCache][] {
    return [...this.caches.entries()];
  }

  all(): KvCache[] {
    return [...this.caches.values()];
  }

  /** Frees every sequence and the shared store's memory (the first cache owns the store: it closes last). */
  close(): void {
    for (const cache of [...this.caches.values()].reverse()) cache.close();
    this.caches.clear();
  }
}
