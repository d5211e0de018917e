// The random-weight model of the shape benches (decode-bench, throughput-bench), whole or
// split over tensor-parallel ranks that share the backend (--tensor-parallel), and its caches.
import { InProcessGroup, KvCache } from '@arkvale/core';
import { disposeLlamaWeights, LlamaForward, randomLlamaWeights, shardLlamaWeights, TensorParallelLlama } from '@arkvale/model-llama';

/** Random weights at `config` on `backend` (seed 7), or each rank's share of them (the whole weights then freed). */
export function benchWeights(config, backend, ranks, sharedEmbedding) {
  const whole = randomLlamaWeights(config, backend, 7, { sharedEmbedding });
  if (ranks === 1) return { whole, shards: null };
  const shards = Array.from({ length: ranks }, (_, r) => shardLlamaWeights(whole, config, r, ranks, backend));
  disposeLlamaWeights(whole, backend);
  return { whole: null, shards };
}

/** The forward pass over `benchWeights`' weights for up to `tokens` positions. */
export function benchForward(config, { whole, shards }, backend, tokens) {
  return shards
    ? TensorParallelLlama.fromShards(config, shards, new InProcessGroup(shards.map(() => backend)), tokens)
    : new LlamaForward(config, whole, backend, tokens);
}

/** A cache of `options` (pools given) for `forward`: one per rank over its KV heads under tensor parallelism. */
export function benchCache(forward, geometry, options, backend, tokens, batch) {
  if (!(forward instanceof TensorParallelLlama)) return new KvCache({ geometry, options, backend });
  return forward.createCache({ ...options, pageSize: geometry.pageSize, kvDtype: geometry.kvDtype }, tokens, batch);
}
