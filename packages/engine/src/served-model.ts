import type { Backend, KvDtype, KvGeometry } from '@arkvale/core';
import { devicePageCapacity, kvGeometry, LlamaEngine, openModelDir, ShapeModel, shapeConfig, type ModelForward, type Tokenizer } from '@arkvale/model-llama';
import { RankWorkers } from './ranks/rank-workers.js';
import type { ResolvedEngineConfig } from './config.js';
import { checkKvDtype } from './load-backend.js';
import { checkTensorParallel } from './model-parts.js';
import type { ModelSource } from './model-parts.js';
import { largestPassRows, planPools, type PoolPlan } from './pool-plan.js';

/** What the scheduler's side needs of a loaded model, from a checkpoint or from a shape. */
export interface ServedModel {
  /** One forward pass, or the ranks of a tensor-parallel one (`ModelSource.tensorParallel`). */
  readonly forward: ModelForward;
  /** null: token ids only. */
  readonly tokenizer: Tokenizer | null;
  readonly eosIds: readonly number[];
  geometry(pageSize: number, kvDtype?: KvDtype): KvGeometry;
  /** Device KV pages that fit beside the weights and a `tokens`-row pass; undefined on a backend without its own memory. */
  devicePageCapacity(pageSize: number, tokens: number, hostPagesFor?: (devicePages: number) => number, kvDtype?: KvDtype): number | undefined;
}

/** Loads the checkpoint folder, or makes random weights at the shape, on the backend. */
export async function loadServedModel(source: ModelSource, backend: Backend, gpuMemoryUtilization?: number): Promise<ServedModel> {
  const ranks = checkTensorParallel(source.tensorParallel);
  // One rank per worker: a thread each on the CPU, a process per GPU where there are enough; else the ranks share the backend.
  if (ranks > 1 && (backend.name === 'cpu' || (backend.name === 'cuda' && (await gpuCount()) >= ranks)))
    return loadWorkerModel(source, ranks, backend, gpuMemoryUtilization);
  if (source.shape !== undefined) {
    const m = ShapeModel.load(source.shape, backend, { gpuMemoryUtilization, tensorParallel: ranks });
    return {
      forward: m.forward,
      tokenizer: null,
      eosIds: m.config.eosTokenIds,
      geometry: (ps, kvDtype) => m.geometry(ps, kvDtype),
      devicePageCapacity: (ps, tokens, hostPagesFor, kvDtype) => m.devicePageCapacity(ps, tokens, hostPagesFor, kvDtype),
    };
  }
  const llama =
    ranks === 1
      ? await LlamaEngine.load(source.modelDir!, backend, { gpuMemoryUtilization })
      : await LlamaEngine.loadTensorParallel(source.modelDir!, Array<Backend>(ranks).fill(backend), { gpuMemoryUtilization });
  return {
    forward: llama.forward,
    tokenizer: llama.model.tokenizer,
    eosIds: llama.model.eosIds,
    geometry: (ps, kvDtype) => llama.geometry(ps, kvDtype),
    devicePageCapacity: (ps, tokens, hostPagesFor, kvDtype) => llama.devicePageCapacity(ps, tokens, hostPagesFor, kvDtype),
  };
}

/** GPUs this process may use (CUDA_VISIBLE_DEVICES's). */
async function gpuCount(): Promise<number> {
  const { cudaStatus } = await import('@arkvale/cuda-binding');
  return cudaStatus().devices.length;
}

/** The model over `ranks` ranks, one per worker (RankWorkers), rank 0 on `backend`. */
async function loadWorkerModel(source: ModelSource, ranks: number, backend: Backend, gpuMemoryUtilization = 0.9): Promise<ServedModel> {
  const model = source.modelDir !== undefined ? openModelDir(source.modelDir) : null;
  const forward = await RankWorkers.start(source, ranks, backend);
  const bytes = backend.dtype === 'f32' ? 4 : 2;
  return {
    forward,
    tokenizer: model?.tokenizer ?? null,
    eosIds: model?.eosIds ?? shapeConfig(source.shape!).eosTokenIds,
    geometry: (ps, kvDtype) => kvGeometry(forward.storedConfig, ps, bytes, kvDtype),
    // Every rank holds as many pages as rank 0, whose GPU (beside its share of the weights) sets the count; undefined on the CPU.
    devicePageCapacity: (ps, tokens, hostPagesFor, kvDtype) =>
      devicePageCapacity(backend, forward.rankConfig, kvGeometry(forward.rankConfig, ps, bytes, kvDtype), gpuMemoryUtilization, tokens, hostPagesFor),
  };
}

/**
 * What every engine (in process or in its worker) loads before its scheduler: the
 * page format checked on the backend before the weights load (an unsupported one fails
 * at once), the model, and the pools planned for it (given, or from the hardware
 * beside the weights and the largest pass).
 */
export async function loadEngineModel(
  source: ModelSource,
  backend: Backend,
  config: ResolvedEngineConfig,
  given: { readonly devicePages?: number; readonly hostPages?: number },
  gpuMemoryUtilization: number,
): Promise<{ model: ServedModel; pools: PoolPlan }> {
  checkKvDtype(backend, config.kvDtype);
  const model = await loadServedModel(source, backend, gpuMemoryUtilization);
  return { model, pools: planPools(model, config, largestPassRows(config, model, backend), given, gpuMemoryUtilization) };
}
