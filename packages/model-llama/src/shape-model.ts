import type { Backend, KvDtype, KvGeometry } from '@arkvale/core';
import { InProcessGroup, invalidArgument } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { checkWeightsFit, devicePageCapacity } from './device-memory.js';
import { LlamaForward, type ModelForward } from './forward.js';
import { countParameters, kvGeometry } from './model-dir.js';
import { tensorParallelLayout } from './shard.js';
import { randomLlamaWeights, shapeConfig } from './shapes.js';
import { TensorParallelLlama } from './tensor-parallel.js';

export interface ShapeModelOptions {
  /** Share of the device's memory the model may use (as LlamaEngine.load). Default 0.9. */
  readonly gpuMemoryUtilization?: number;
  /** The shared embedding component (randomLlamaWeights); default 1, so that attention has the locality trained models have. */
  readonly sharedEmbedding?: number;
  readonly seed?: number;
  /**
   * Tensor-parallel ranks (default 1), all on the one backend, each drawing its share
   * of the random weights in place (docs/DESIGN.md, "Tensor parallelism").
   */
  readonly tensorParallel?: number;
}

/**
 * Random weights at a real model shape (LLAMA_SHAPES), made on the backend's device:
 * the model-scale work of a checkpoint (every kernel at its real size) without its
 * files. It has token ids only: no tokenizer, no chat template.
 */
export class ShapeModel {
  private constructor(
    readonly shape: string,
    readonly config: LlamaConfig,
    /** One `LlamaForward`, or a `TensorParallelLlama` with `tensorParallel` > 1. */
    readonly forward: ModelForward,
    readonly gpuMemoryUtilization: number,
  ) {}

  static load(shape: string, backend: Backend, options: ShapeModelOptions = {}): ShapeModel {
    const utilization = options.gpuMemoryUtilization ?? 0.9;
    if (!(utilization > 0 && utilization <= 1)) throw invalidArgument(`GPU memory utilization must be in (0, 1], got ${String(utilization)}`);
    const config = shapeConfig(shape);
    const size = options.tensorParallel ?? 1;
    // A size the shape's heads or MLP do not divide is refused before anything is made.
    tensorParallelLayout(config, 0, size);
    // Weights that cannot fit fail before a byte is made.
    checkWeightsFit(backend, config, countParameters(config), utilization);
    const draw = (shard?: { rank: number; size: number }) =>
      randomLlamaWeights(config, backend, options.seed ?? 7, { sharedEmbedding: options.sharedEmbedding ?? 1, shard });
    if (size === 1) return new ShapeModel(shape, config, new LlamaForward(config, draw(), backend), utilization);
    const shards = Array.from({ length: size }, (_, rank) => draw({ rank, size }));
    const model = TensorParallelLlama.fromShards(config, shards, new InProcessGroup(Array<Backend>(size).fill(backend)));
    return new ShapeModel(shape, config, model, utilization);
  }

  get backend(): Backend {
    return this.forward.backend;
  }

  /** The cache geometry on this backend (KV pages in its dtype, or fp8 pages); split over ranks, every rank's KV heads. */
  geometry(pageSize: number, kvDtype?: KvDtype): KvGeometry {
    return kvGeometry(this.forward.storedConfig ?? this.config, pageSize, this.backend.dtype === 'f32' ? 4 : 2, kvDtype);
  }

  /** As LlamaEngine.devicePageCapacity: device KV pages that fit beside the weights and a `tokens`-row pass. */
  devicePageCapacity(pageSize: number, tokens: number, hostPagesFor?: (devicePages: number) => number, kvDtype?: KvDtype): number | undefined {
    return devicePageCapacity(this.backend, this.config, this.geometry(pageSize, kvDtype), this.gpuMemoryUtilization, tokens, hostPagesFor);
  }
}
