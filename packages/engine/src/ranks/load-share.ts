import type { Backend } from '@arkvale/core';
import { openModelDir, randomLlamaWeights, type LlamaConfig, type LlamaWeights } from '@arkvale/model-llama';

/** Where a rank's weights come from: a checkpoint folder (each rank reads its share) or a random-weight shape. */
export interface RankSource {
  readonly modelDir?: string;
  readonly shape?: string;
}

/** Rank `rank`'s share of the weights on `backend`: read from the checkpoint, or drawn in place from the shape's random weights (seed 7, shared embedding x1). */
export async function loadShare(source: RankSource, config: LlamaConfig, rank: number, size: number, backend: Backend): Promise<LlamaWeights> {
  if (source.modelDir !== undefined) return openModelDir(source.modelDir).loadWeights(backend, { shard: { rank, size } });
  return randomLlamaWeights(config, backend, 7, { sharedEmbedding: 1, shard: { rank, size } });
}
