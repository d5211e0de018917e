import { basename } from 'node:path';
import { invalidArgument, type KvGeometry } from '@arkvale/core';
import { kvGeometry, openModelDir, shapeConfig, type LlamaConfig, type ModelDir } from '@arkvale/model-llama';
import { createChatFormat, type ChatFormat } from './chat-format.js';
import { resolveEngineConfig, type EngineConfig, type ResolvedEngineConfig } from './config.js';
import { EngineError } from './errors.js';
import { RequestPlanner } from './prepare.js';
import type { EngineModelInfo } from './types.js';

/** Which model an engine serves: a checkpoint folder, or random weights at a model shape. */
export interface ModelSource {
  /** A Hugging Face LLaMA folder. */
  readonly modelDir?: string;
  /**
   * Instead of a folder: random weights at this shape (LLAMA_SHAPES: llama2-7b,
   * llama3-8b, llama2-70b, tiny-retrieval), made on the device. Such a model has token ids only:
   * prompts come as ids, and chat is refused.
   */
  readonly shape?: string;
  /**
   * Tensor-parallel ranks the model is split over (docs/DESIGN.md, "Tensor
   * parallelism"): its heads, MLP columns and vocabulary, each rank with the pages of
   * its KV heads. Default 1. On the CPU each rank computes in a thread of its own; on
   * CUDA each in a process on its own GPU (NCCL) where there is a GPU per rank, else
   * every rank shares the one GPU in this thread (`loadServedModel`).
   */
  readonly tensorParallel?: number;
}

/** The tensor-parallel size, 1 when not given; INVALID_ARGUMENT unless a positive integer. */
export function checkTensorParallel(size: number | undefined): number {
  if (size === undefined) return 1;
  if (!Number.isInteger(size) || size < 1) throw invalidArgument(`tensorParallel must be a positive integer, got ${String(size)}`);
  return size;
}

export interface ModelOptions extends EngineConfig, ModelSource {
  /** The name clients use in `model`. Default: the folder's name, or the shape's. */
  readonly modelId?: string;
  /** A Jinja chat template to use instead of the model's (or of the plain fallback). */
  readonly chatTemplateFile?: string;
}

/** What the caller's side of an engine needs of the model: no weights, only its tokenizer and shape. */
export interface ClientParts {
  /** The folder, or `shape:NAME` for random weights. */
  readonly source: string;
  readonly config: ResolvedEngineConfig;
  readonly geometry: KvGeometry;
  readonly planner: RequestPlanner;
  readonly chat: ChatFormat;
  info(backend: string): EngineModelInfo;
  /** The same parts with the pools the engine planned (the planner refuses what they can never hold). */
  withPools(devicePages: number, hostPages: number): ClientParts;
}

/** The folder or the shape, exactly one; refused with the reason otherwise. */
export function checkModelSource(o: ModelSource): void {
  if (o.modelDir !== undefined && o.shape !== undefined) throw invalidArgument('give a model folder or a model shape, not both');
  if (o.modelDir === undefined && o.shape === undefined) throw invalidArgument('no model: give a model folder (modelDir) or a model shape (shape)');
}

/** Chat for a model of token ids only: refused, saying what to send instead. */
function noChat(shape: string): ChatFormat {
  return {
    source: `none (random weights at the ${shape} shape have no tokenizer)`,
    supportsTools: false,
    encode: () => {
      throw new EngineError(
        'invalid_request',
        `this model (random weights at the ${shape} shape) has no tokenizer or chat template: send token ids to /v1/completions`,
        'messages',
      );
    },
  };
}

export function clientParts(options: ModelOptions): ClientParts {
  checkModelSource(options);
  checkTensorParallel(options.tensorParallel);
  const model = options.shape !== undefined ? null : openModelDir(options.modelDir!);
  return partsOf(options, model, model?.config ?? shapeConfig(options.shape!));
}

function partsOf(options: ModelOptions, model: ModelDir | null, llama: LlamaConfig): ClientParts {
  const config = resolveEngineConfig(options);
  // Requests are planned in page counts on this side; the engine stores pages in its backend's dtype.
  const geometry = kvGeometry(llama, config.pageSize, 4);
  const maxPositions = llama.maxPositionEmbeddings;
  const planner = new RequestPlanner(config, geometry, model?.tokenizer ?? null, maxPositions, llama.vocabSize);
  // The default plan must be valid before anything is served.
  planner.planner(config.policy, config.budgetTokens);
  const chat = model ? createChatFormat(model, options.chatTemplateFile) : noChat(options.shape!);
  const source = model ? model.dir : `shape:${options.shape}`;
  return {
    source,
    config,
    geometry,
    planner,
    chat,
    info: (backend) => ({
      id: options.modelId ?? (model ? basename(model.dir) : options.shape!),
      dir: source,
      maxPositions,
      backend,
      pageSize: config.pageSize,
      kvDtype: config.kvDtype,
      defaultPolicy: config.policy,
      defaultBudget: config.budgetTokens,
    }),
    withPools: (devicePages, hostPages) => partsOf({ ...options, devicePages, hostPages }, model, llama),
  };
}
