import { basename } from 'node:path';
import type { KvGeometry } from '@arkvale/core';
import { kvGeometry, openModelDir, type ModelDir } from '@arkvale/model-llama';
import { createChatFormat, type ChatFormat } from './chat-format.js';
import { resolveEngineConfig, type EngineConfig, type ResolvedEngineConfig } from './config.js';
import { RequestPlanner } from './prepare.js';
import type { EngineModelInfo } from './types.js';

export interface ModelOptions extends EngineConfig {
  /** A Hugging Face LLaMA folder. */
  readonly modelDir: string;
  /** The name clients use in `model`. Default: the folder's name. */
  readonly modelId?: string;
  /** A Jinja chat template to use instead of the model's (or of the plain fallback). */
  readonly chatTemplateFile?: string;
}

/** What the caller's side of an engine needs of the model: no weights, only its tokenizer and shape. */
export interface ClientParts {
  readonly model: ModelDir;
  readonly config: ResolvedEngineConfig;
  readonly geometry: KvGeometry;
  readonly planner: RequestPlanner;
  readonly chat: ChatFormat;
  info(backend: string): EngineModelInfo;
}

/**
 * The KV geometry requests are planned with on the caller's side (page counts; the
 * engine itself stores pages in its backend's dtype: LlamaEngine.geometry).
 */
export function engineGeometry(model: ModelDir, config: ResolvedEngineConfig): KvGeometry {
  return kvGeometry(model.config, config.pageSize, 4);
}

export function clientParts(options: ModelOptions): ClientParts {
  const model = openModelDir(options.modelDir);
  const config = resolveEngineConfig(options);
  const geometry = engineGeometry(model, config);
  const maxPositions = model.config.maxPositionEmbeddings;
  const planner = new RequestPlanner(config, geometry, model.tokenizer, maxPositions);
  // The default plan must be valid before anything is served.
  planner.planner(config.policy, config.budgetTokens);
  const chat = createChatFormat(model, options.chatTemplateFile);
  return {
    model,
    config,
    geometry,
    planner,
    chat,
    info: (backend) => ({
      id: options.modelId ?? basename(model.dir),
      dir: model.dir,
      maxPositions,
      backend,
      pageSize: config.pageSize,
      defaultPolicy: config.policy,
      defaultBudget: config.budgetTokens,
    }),
  };
}
