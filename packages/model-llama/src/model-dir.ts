import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArkvaleError, geometryKvDtype, kvBytesPerToken, pageBytes, validateGeometry, type Backend, type KvDtype, type KvGeometry } from '@arkvale/core';
import { ChatTemplate, noChatTemplateError, type ChatMessage, type RenderChatOptions } from './chat-template.js';
import { parseLlamaConfig, type LlamaConfig } from './config.js';
import { describeJson, isFile, readJsonObject } from './files.js';
import { SafetensorsCheckpoint, type WeightDType } from './safetensors.js';
import { Tokenizer } from './tokenizer.js';
import { loadLlamaWeights, planLlamaWeights, type LlamaWeights, type LoadWeightsOptions } from './weights.js';

/** generation_config.json, as far as it matters here (all fields optional). */
export interface GenerationDefaults {
  readonly bosTokenId?: number;
  readonly eosTokenIds?: readonly number[];
  readonly maxNewTokens?: number;
  readonly doSample?: boolean;
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
}

export interface ModelDir {
  /** Absolute path of the folder. */
  readonly dir: string;
  readonly config: LlamaConfig;
  readonly tokenizer: Tokenizer;
  readonly generation: GenerationDefaults;
  /** Tokens that end a sequence: the tokenizer's end-of-sequence tokens and config.json's eos_token_id. */
  readonly eosIds: readonly number[];
  /** null when the model has no chat template (see `applyChatTemplate`). */
  readonly chatTemplate: ChatTemplate | null;
  /** Headers of the checkpoint, already checked against `config` (no tensor data read). */
  readonly checkpoint: SafetensorsCheckpoint;
  /** Dtypes of the tensors that `loadWeights` reads, and their total size. */
  readonly weightDtypes: readonly WeightDType[];
  readonly weightBytes: number;
  loadWeights(backend: Backend, options?: Omit<LoadWeightsOptions, 'checkpoint'>): Promise<LlamaWeights>;
  /** Renders the chat template; UNSUPPORTED_MODEL when the model has none. */
  applyChatTemplate(messages: readonly ChatMessage[], options?: RenderChatOptions): string;
  /**
   * Renders and tokenizes a conversation. The template writes any BOS itself, so the
   * text is encoded without special tokens (as transformers' apply_chat_template does).
   */
  encodeChat(messages: readonly ChatMessage[], options?: RenderChatOptions): number[];
}

function readGeneration(file: string): GenerationDefaults {
  if (!isFile(file)) return {};
  const json = readJsonObject(file);
  const bad = (field: string): ArkvaleError =>
    new ArkvaleError('INVALID_CONFIG', `${file}: field "${field}" has an invalid value ${describeJson(json[field])}`);
  const num = (field: string, check: (n: number) => boolean): number | undefined => {
    const v = json[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !check(v)) throw bad(field);
    return v;
  };
  const tokenId = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
  let eos: number[] | undefined;
  const eosRaw = json.eos_token_id;
  if (eosRaw !== undefined && eosRaw !== null) {
    const list = Array.isArray(eosRaw) ? eosRaw : [eosRaw];
    if (!list.every((n) => typeof n === 'number' && tokenId(n))) throw bad('eos_token_id');
    eos = list as number[];
  }
  const doSample = json.do_sample;
  if (doSample !== undefined && doSample !== null && typeof doSample !== 'boolean') throw bad('do_sample');
  const out: Record<string, unknown> = {
    bosTokenId: num('bos_token_id', tokenId),
    eosTokenIds: eos,
    maxNewTokens: num('max_new_tokens', (n) => Number.isSafeInteger(n) && n > 0),
    doSample: typeof doSample === 'boolean' ? doSample : undefined,
    temperature: num('temperature', (n) => n >= 0),
    topK: num('top_k', (n) => Number.isSafeInteger(n) && n >= 0),
    topP: num('top_p', (n) => n > 0 && n <= 1),
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as GenerationDefaults;
}

/**
 * Opens a Hugging Face LLaMA-family model folder: validates config.json, loads the
 * tokenizer, generation_config.json and chat template, and reads the safetensors
 * headers, checking every expected tensor's presence and shape. Reads no weights.
 */
export function openModelDir(dir: string): ModelDir {
  const abs = path.resolve(dir);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new ArkvaleError('MODEL_FILE', `model folder not found: ${abs}`);
  }
  if (!stat.isDirectory()) throw new ArkvaleError('MODEL_FILE', `model path ${abs} is not a folder`);
  const configFile = path.join(abs, 'config.json');
  if (!isFile(configFile)) {
    throw new ArkvaleError('MODEL_FILE', `${abs} is not a Hugging Face model folder: config.json not found (${configFile})`);
  }
  const config = parseLlamaConfig(readJsonObject(configFile), configFile);
  const generation = readGeneration(path.join(abs, 'generation_config.json'));
  const tokenizer = Tokenizer.fromDir(abs, {
    extraEosIds: [...config.eosTokenIds, ...(generation.eosTokenIds ?? [])],
    fallbackBosId: config.bosTokenId,
  });
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ArkvaleError(
      'MODEL_FILE',
      `${tokenizer.source} has token ids up to ${tokenizer.vocabSize - 1}, beyond vocab_size ${config.vocabSize} of ${configFile}`,
    );
  }
  const chatTemplate = ChatTemplate.fromDir(abs, tokenizer.tokenizerConfig, {
    bos_token: tokenizer.bosToken,
    eos_token: tokenizer.eosToken,
    unk_token: tokenizer.tokenizerConfig.unk_token as string | null | undefined,
    pad_token: tokenizer.tokenizerConfig.pad_token as string | null | undefined,
  });
  const checkpoint = SafetensorsCheckpoint.open(abs);
  const plan = planLlamaWeights(checkpoint, config);

  const applyChatTemplate = (messages: readonly ChatMessage[], options?: RenderChatOptions): string => {
    if (chatTemplate === null) throw noChatTemplateError(abs);
    return chatTemplate.render(messages, options);
  };
  return {
    dir: abs,
    config,
    tokenizer,
    generation,
    eosIds: [...new Set([...tokenizer.eosIds, ...config.eosTokenIds])],
    chatTemplate,
    checkpoint,
    weightDtypes: [...new Set(plan.map((p) => p.entry.dtype))],
    weightBytes: plan.reduce((n, p) => n + p.entry.byteLength, 0),
    loadWeights: async (backend, options = {}) => {
      try {
        return await loadLlamaWeights(abs, config, backend, { ...options, checkpoint });
      } finally {
        checkpoint.close(); // file handles only; the headers stay usable
      }
    },
    applyChatTemplate,
    encodeChat: (messages, options) => tokenizer.encode(applyChatTemplate(messages, options), { addSpecialTokens: false }),
  };
}

/**
 * The KV geometry of `config` for a page pool: pages in the backend's dtype
 * (`bytesPerElement`), or of `kvDtype` ('fp8': e4m3 pages; 'auto' or none: the backend's).
 */
export function kvGeometry(config: LlamaConfig, pageSize: number, bytesPerElement: number, kvDtype?: KvDtype): KvGeometry {
  const pages = geometryKvDtype(kvDtype, '--kv-dtype');
  return validateGeometry({
    numLayers: config.numLayers,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    pageSize,
    bytesPerElement,
    ...(pages ? { kvDtype: pages } : {}),
  });
}

/** Parameters of the model described by `config` (the tied lm_head counted once). */
export function countParameters(config: LlamaConfig): number {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim } = config;
  const attention = 2 * H * numHeads * headDim + 2 * H * numKvHeads * headDim;
  const mlp = 3 * H * I;
  const norms = 2 * H;
  const embeddings = V * H * (config.tieWordEmbeddings ? 1 : 2);
  return embeddings + config.numLayers * (attention + mlp + norms) + H;
}

export interface KvBytes {
  readonly f16: number;
  readonly f32: number;
  /** fp8 pages (--kv-dtype fp8): a byte per value and a scale byte per token, KV head and K|V. */
  readonly fp8: number;
}

export interface ModelDescription {
  readonly architecture: string;
  readonly modelType: string;
  /** config.json's torch_dtype, or "unknown". */
  readonly dtype: string;
  readonly parameterCount: number;
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** e.g. "theta 500000, no scaling" or "theta 500000, llama3 x8 (low 1, high 4, original 8192)". */
  readonly rope: string;
  /** K and V of one token across all layers: 2 * layers * kvHeads * headDim * bytes (fp8: 2 * layers * kvHeads * (headDim + 1)). */
  readonly kvBytesPerToken: KvBytes;
  /** One page of one layer (K and V of every KV head, `pageSize` tokens), as the page pools allocate it. */
  readonly pageBytes: readonly ({ readonly pageSize: number } & KvBytes)[];
}

export const DESCRIBED_PAGE_SIZES: readonly number[] = [8, 16, 32, 64];

function describeRope(config: LlamaConfig): string {
  const s = config.ropeScaling;
  const theta = `theta ${config.ropeTheta}`;
  if (s === null) return `${theta}, no scaling`;
  if (s.type === 'linear') return `${theta}, linear x${s.factor}`;
  return `${theta}, llama3 x${s.factor} (low ${s.lowFreqFactor}, high ${s.highFreqFactor}, original ${s.originalMaxPositionEmbeddings})`;
}

/** What `arkvale inspect model` shows, computed from the config alone. */
export function describeModel(config: LlamaConfig): ModelDescription {
  const perToken = (bytes: number, kvDtype?: KvDtype): number => config.numLayers * kvBytesPerToken(kvGeometry(config, 1, bytes, kvDtype));
  return {
    architecture: config.architecture,
    modelType: config.modelType,
    dtype: config.torchDtype ?? 'unknown',
    parameterCount: countParameters(config),
    numLayers: config.numLayers,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    vocabSize: config.vocabSize,
    maxPositionEmbeddings: config.maxPositionEmbeddings,
    tieWordEmbeddings: config.tieWordEmbeddings,
    rope: describeRope(config),
    kvBytesPerToken: { f16: perToken(2), f32: perToken(4), fp8: perToken(2, 'fp8') },
    pageBytes: DESCRIBED_PAGE_SIZES.map((pageSize) => ({
      pageSize,
      f16: pageBytes(kvGeometry(config, pageSize, 2)),
      f32: pageBytes(kvGeometry(config, pageSize, 4)),
      fp8: pageBytes(kvGeometry(config, pageSize, 2, 'fp8')),
    })),
  };
}
