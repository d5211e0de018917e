import { createPolicy, poolPagesFor, type KvGeometry, type KvPolicy, type ResolvedCacheOptions } from '@arkvale/core';
import type { ModelCache } from '@arkvale/model-llama';

/**
 * Most device pages one decode step of one sequence can take: a new page in every
 * layer, and under a policy that recalls (ArkVale) its top-k recalls per layer and
 * selection group. The scheduler keeps this much free beside what a sequence holds.
 */
export function stepPagesBound(g: KvGeometry, o: ResolvedCacheOptions, policy: KvPolicy = createPolicy(o)): number {
  const recalls = policy.kind === 'page' && policy.recallable ? o.topK * (o.selection === 'kv-head' ? g.numKvHeads : 1) : 0;
  return g.numLayers * (1 + recalls);
}

/** stepPagesBound of a cache's plan. */
export const stepBound = (cache: ModelCache): number => stepPagesBound(cache.geometry, cache.options, cache.policy);

/** The device pool a batch of `sequences` of up to `tokens` tokens needs under the scheduler: what they hold at most, and each a step's bound. */
export function batchDevicePages(g: KvGeometry, o: ResolvedCacheOptions, tokens: number, sequences: number): number {
  return poolPagesFor(g, o, tokens, sequences).devicePages + stepPagesBound(g, o) * sequences;
}
