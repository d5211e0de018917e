import type { Backend, KvDtype, KvGeometry } from '@arkvale/core';
import { LlamaEngine, ShapeModel, type LlamaForward, type Tokenizer } from '@arkvale/model-llama';
import type { ModelSource } from './model-parts.js';

/** What the scheduler's side needs of a loaded model, from a checkpoint or from a shape. */
export interface ServedModel {
  readonly forward: LlamaForward;
  /** null: token ids only. */
  readonly tokenizer: Tokenizer | null;
  readonly eosIds: readonly number[];
  geometry(pageSize: number, kvDtype?: KvDtype): KvGeometry;
  /** Device KV pages that fit beside the weights and a `tokens`-row pass; undefined on a backend without its own memory. */
  devicePageCapacity(pageSize: number, tokens: number, hostPagesFor?: (devicePages: number) => number, kvDtype?: KvDtype): number | undefined;
}

/** Loads the checkpoint folder, or makes random weights at the shape, on the backend. */
export async function loadServedModel(source: ModelSource, backend: Backend, gpuMemoryUtilization?: number): Promise<ServedModel> {
  if (source.shape !== undefined) {
    const m = ShapeModel.load(source.shape, backend, { gpuMemoryUtilization });
    return {
      forward: m.forward,
      tokenizer: null,
      eosIds: m.config.eosTokenIds,
      geometry: (ps, kvDtype) => m.geometry(ps, kvDtype),
      devicePageCapacity: (ps, tokens, hostPagesFor, kvDtype) => m.devicePageCapacity(ps, tokens, hostPagesFor, kvDtype),
    };
  }
  const llama = await LlamaEngine.load(source.modelDir!, backend, { gpuMemoryUtilization });
  return {
    forward: llama.forward,
    tokenizer: llama.model.tokenizer,
    eosIds: llama.model.eosIds,
    geometry: (ps, kvDtype) => llama.geometry(ps, kvDtype),
    devicePageCapacity: (ps, tokens, hostPagesFor, kvDtype) => llama.devicePageCapacity(ps, tokens, hostPagesFor, kvDtype),
  };
}
