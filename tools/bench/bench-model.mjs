// The random-weight model of the shape benches (decode-bench, throughput-bench), whole or
// split over tensor-parallel ranks (--tensor-parallel), and its caches. The ranks run one
// per GPU (RankWorkers: a process each, NCCL) where the machine has a GPU per rank, and
// otherwise share the backend in this thread.
import { InProcessGroup, KvCache } from '@arkvale/core';
import { RankWorkers } from '@arkvale/engine';
import { LlamaForward, randomLlamaWeights, TensorParallelLlama } from '@arkvale/model-llama';

/** GPUs this process may use. */
async function gpuCount() {
  const { cudaStatus } = await import('@arkvale/cuda-binding');
  return cudaStatus().devices.length;
}

/**
 * The model's weights: whole, each rank's share drawn in place on this backend, or none
 * here when each rank makes its own on its GPU (`workers`).
 */
export async function benchWeights(config, backend, ranks, sharedEmbedding, shape) {
  if (ranks > 1 && backend.name === 'cuda' && (await gpuCount()) >= ranks) {
    if (sharedEmbedding !== 1) throw new Error('ranks on GPUs of their own make their weights with the shared embedding x1');
    return { whole: null, shards: null, workers: { shape, ranks } };
  }
  if (ranks === 1) return { whole: randomLlamaWeights(config, backend, 7, { sharedEmbedding }), shards: null, workers: null };
  const shards = Array.from({ length: ranks }, (_, rank) => randomLlamaWeights(config, backend, 7, { sharedEmbedding, shard: { rank, size: ranks } }));
  return { whole: null, shards, workers: null };
}

/** The forward pass over `benchWeights`' weights for up to `tokens` positions (rank workers: started here; dispose it after). */
export async function benchForward(config, { whole, shards, workers }, backend, tokens) {
  if (workers) return RankWorkers.start({ shape: workers.shape }, workers.ranks, backend, tokens);
  return shards
    ? TensorParallelLlama.fromShards(config, shards, new InProcessGroup(shards.map(() => backend)), tokens)
    : new LlamaForward(config, whole, backend, tokens);
}

/** A cache of `options` (pools given) for `forward`: one per rank over its KV heads under tensor parallelism. */
export function benchCache(forward, geometry, options, backend, tokens, batch) {
  const page = { pageSize: geometry.pageSize, kvDtype: geometry.kvDtype };
  if (forward instanceof RankWorkers) return forward.createPlanCache(page, options, false);
  if (!(forward instanceof TensorParallelLlama)) return new KvCache({ geometry, options, backend });
  return forward.createCache({ ...options, ...page }, tokens, batch);
}

/** Frees what `benchForward` started for one run (rank workers); a forward over shared weights is left as it is. */
export function endBenchForward(forward) {
  if (forward instanceof RankWorkers) forward.dispose();
}
