import * as path from 'node:path';
import { ArkvaleError, invalidArgument, type RopeSpec } from '@arkvale/core';
import { describeJson, readJsonObject } from './files.js';

export type LlamaModelType = 'llama' | 'mistral' | 'qwen2';
export type LlamaArchitecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';

/** RoPE frequency scaling of a checkpoint (`rope_scaling` / `rope_parameters` in config.json). */
export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/** A validated Hugging Face LLaMA-family `config.json`. */
export interface LlamaConfig {
  readonly modelType: LlamaModelType;
  readonly architecture: LlamaArchitecture;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** null: plain RoPE (`rope_scaling` absent, null or of type "default"). */
  readonly ropeScaling: RopeScaling | null;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** Biases on the q, k and v projections (Qwen2). */
  readonly qkvBias: boolean;
  readonly bosTokenId: number | null;
  /** Every id that ends generation according to config.json (may be empty). */
  readonly eosTokenIds: readonly number[];
  /** `torch_dtype` (or transformers 5's `dtype`) as written, e.g. "float16"; null when absent. */
  readonly torchDtype: string | null;
  /** Where the config was read from (a path, or a label for in-memory JSON). */
  readonly source: string;
}

const SUPPORTED_MODEL_TYPES: Record<LlamaModelType, LlamaArchitecture> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};
const SUPPORTED_ARCHITECTURES: readonly LlamaArchitecture[] = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'];

/** transformers' LlamaConfig / MistralConfig / Qwen2Config defaults for max_position_embeddings. */
const DEFAULT_MAX_POSITIONS: Record<LlamaModelType, number> = { llama: 2048, mistral: 4096 * 32, qwen2: 32768 };

function invalid(source: string, field: string, message: string): ArkvaleError {
  return new ArkvaleError('INVALID_CONFIG', `${source}: field "${field}" ${message}`);
}

function unsupported(source: string, field: string, message: string): ArkvaleError {
  return new ArkvaleError('UNSUPPORTED_MODEL', `${source}: field "${field}" ${message}`);
}

/** Typed field access with errors that name the file and the field. */
class Fields {
  constructor(
    private readonly json: Record<string, unknown>,
    private readonly source: string,
    private readonly prefix = '',
  ) {}

  private name(key: string): string {
    return this.prefix + key;
  }

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  raw(key: string): unknown {
    return this.json[key];
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw invalid(this.source, this.name(key), 'is required');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw invalid(this.source, this.name(key), `must be an integer >= ${min}, got ${describeJson(v)}`);
    }
    return v;
  }

  positive(key: string, fallback?: number): number {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw invalid(this.source, this.name(key), 'is required');
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw invalid(this.source, this.name(key), `must be a positive number, got ${describeJson(v)}`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.json[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw invalid(this.source, this.name(key), `must be true or false, got ${describeJson(v)}`);
    return v;
  }

  str(key: string): string | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw invalid(this.source, this.name(key), `must be a string, got ${describeJson(v)}`);
    return v;
  }

  tokenIds(key: string, fallback: number[]): number[] {
    const v = this.json[key];
    if (v === undefined) return fallback;
    if (v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        throw invalid(this.source, this.name(key), `must be a token id or a list of token ids, got ${describeJson(v)}`);
      }
    }
    return [...new Set(list as number[])];
  }
}

function parseArchitecture(f: Fields, source: string): { modelType: LlamaModelType; architecture: LlamaArchitecture } {
  const modelType = f.str('model_type');
  if (modelType !== null && !(modelType in SUPPORTED_MODEL_TYPES)) {
    throw unsupported(
      source,
      'model_type',
      `is ${JSON.stringify(modelType)}; only LLaMA-family models are supported (model_type "llama", "mistral" or "qwen2")`,
    );
  }
  const archs = f.raw('architectures');
  let architecture: LlamaArchitecture | undefined;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string')) {
      throw invalid(source, 'architectures', `must be a list of class names, got ${describeJson(archs)}`);
    }
    architecture = SUPPORTED_ARCHITECTURES.find((a) => archs.includes(a));
    if (architecture === undefined) {
      throw unsupported(source, 'architectures', `is [${archs.map((a) => JSON.stringify(a)).join(', ')}]; expected ${SUPPORTED_ARCHITECTURES.join(' or ')}`);
    }
  }
  if (modelType === null) {
    if (architecture === undefined) {
      throw invalid(source, 'model_type', 'is required (expected "llama", "mistral" or "qwen2")');
    }
    const type = (Object.keys(SUPPORTED_MODEL_TYPES) as LlamaModelType[]).find((t) => SUPPORTED_MODEL_TYPES[t] === architecture)!;
    return { modelType: type, architecture };
  }
  const mt = modelType as LlamaModelType;
  return { modelType: mt, architecture: architecture ?? SUPPORTED_MODEL_TYPES[mt] };
}

function parseRopeScaling(json: Record<string, unknown>, source: string): { theta: number | null; scaling: RopeScaling | null } {
  // transformers <= 4.x: `rope_theta` + `rope_scaling`; transformers 5: `rope_parameters` holding both.
  const key = json.rope_parameters !== undefined && json.rope_parameters !== null ? 'rope_parameters' : 'rope_scaling';
  const value = json[key];
  if (value === undefined || value === null) return { theta: null, scaling: null };
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(source, key, `must be an object or null, got ${describeJson(value)}`);
  }
  const f = new Fields(value as Record<string, unknown>, source, `${key}.`);
  const theta = key === 'rope_parameters' && f.has('rope_theta') ? f.positive('rope_theta') : null;
  // BC in transformers: "rope_type" was originally "type".
  const typeKey = f.has('rope_type') ? 'rope_type' : 'type';
  const type = f.str(typeKey) ?? 'default';
  switch (type) {
    case 'default':
      return { theta, scaling: null };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: f.positive('factor') } };
    case 'llama3': {
      const scaling: RopeScaling = {
        type: 'llama3',
        factor: f.positive('factor'),
        lowFreqFactor: f.positive('low_freq_factor'),
        highFreqFactor: f.positive('high_freq_factor'),
        originalMaxPositionEmbeddings: f.int('original_max_position_embeddings'),
      };
      if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
        throw invalid(source, `${key}.high_freq_factor`, `(${scaling.highFreqFactor}) must be greater than low_freq_factor (${scaling.lowFreqFactor})`);
      }
      return { theta, scaling };
    }
    default:
      throw unsupported(source, `${key}.${typeKey}`, `is ${JSON.stringify(type)}; supported RoPE scaling types: "default", "linear", "llama3"`);
  }
}

/**
 * Validates a parsed Hugging Face `config.json` of a LLaMA-family model. Throws
 * ArkvaleError('UNSUPPORTED_MODEL') for valid configs of models this package cannot run
 * and ArkvaleError('INVALID_CONFIG') for malformed ones; both name `source` and the field.
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ArkvaleError('INVALID_CONFIG', `${source}: expected a JSON object, got ${describeJson(json)}`);
  }
  const obj = json as Record<string, unknown>;
  const f = new Fields(obj, source);
  const { modelType, architecture } = parseArchitecture(f, source);

  if (f.has('quantization_config')) {
    throw unsupported(source, 'quantization_config', 'is set; quantized checkpoints are not supported (use float16, bfloat16 or float32 weights)');
  }
  const act = f.str('hidden_act') ?? 'silu';
  if (act !== 'silu' && act !== 'swish') {
    throw unsupported(source, 'hidden_act', `is ${JSON.stringify(act)}; only "silu" is supported`);
  }
  for (const bias of ['attention_bias', 'mlp_bias']) {
    if (f.bool(bias, false)) throw unsupported(source, bias, 'is true; biased projections are not supported');
  }
  if (modelType === 'qwen2' && f.bool('use_sliding_window', false)) {
    throw unsupported(source, 'use_sliding_window', 'is true; sliding-window attention is not supported');
  }
  const partial = obj.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw unsupported(source, 'partial_rotary_factor', `is ${describeJson(partial)}; only full-width RoPE (1.0) is supported`);
  }

  const vocabSize = f.int('vocab_size');
  const hiddenSize = f.int('hidden_size');
  const intermediateSize = f.int('intermediate_size');
  const numLayers = f.int('num_hidden_layers');
  const numHeads = f.int('num_attention_heads');
  const numKvHeads = f.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw invalid(source, 'num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  }
  let headDim: number;
  if (f.has('head_dim')) {
    headDim = f.int('head_dim');
  } else {
    if (hiddenSize % numHeads !== 0) {
      throw invalid(source, 'hidden_size', `(${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and "head_dim" is not set`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw invalid(source, 'head_dim', `must be even for RoPE, got ${headDim}`);

  const maxPositionEmbeddings = f.int('max_position_embeddings', DEFAULT_MAX_POSITIONS[modelType]);
  // Sliding-window attention only changes results once a sequence outgrows the window.
  const useSliding = f.bool('use_sliding_window', true);
  if (useSliding && f.has('sliding_window')) {
    const window = f.int('sliding_window');
    if (window < maxPositionEmbeddings) {
      throw unsupported(
        source,
        'sliding_window',
        `is ${window} (< max_position_embeddings ${maxPositionEmbeddings}); sliding-window attention is not supported`,
      );
    }
  }

  const rope = parseRopeScaling(obj, source);
  const ropeTheta = rope.theta ?? f.positive('rope_theta', 10000);
  const torchDtype = f.has('torch_dtype') ? f.str('torch_dtype') : f.str('dtype');

  return {
    modelType,
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.positive('rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling: rope.scaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2',
    bosTokenId: f.tokenIds('bos_token_id', [1])[0] ?? null,
    eosTokenIds: f.tokenIds('eos_token_id', [2]),
    torchDtype,
    source,
  };
}

/** Reads and validates `config.json` (given the file or the model folder). */
export function loadLlamaConfig(fileOrDir: string): LlamaConfig {
  const file = path.extname(fileOrDir) === '.json' ? fileOrDir : path.join(fileOrDir, 'config.json');
  return parseLlamaConfig(readJsonObject(file), file);
}

export interface RopeOptions {
  /**
   * 'transformers' (default): float32 arithmetic step by step in the order PyTorch
   * evaluates transformers' `modeling_rope_utils` (float32 tensors, Python scalars cast
   * to float32, `a / tensor` as `reciprocal(tensor) * a`), so the table matches
   * transformers bit for bit up to the last-ulp rounding of float32 `pow`.
   * 'float64': the same formulas in float64, rounded to float32 once at the end.
   */
  readonly precision?: 'transformers' | 'float64';
}

type RopeParams = Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>;

/** RoPE inverse frequencies (headDim / 2 of them) with the config's scaling applied. */
export function ropeInvFreq(config: RopeParams, options: RopeOptions = {}): Float32Array {
  return options.precision === 'float64' ? invFreqFloat64(config) : invFreqTransformers(config);
}

/** The RopeSpec a backend needs to build its cos/sin table for `maxPositions` positions. */
export function ropeSpec(config: RopeParams, maxPositions: number, options: RopeOptions = {}): RopeSpec {
  if (!Number.isSafeInteger(maxPositions) || maxPositions < 1) {
    throw invalidArgument(`ropeSpec: maxPositions must be a positive integer, got ${String(maxPositions)}`);
  }
  // Linear and llama3 scaling leave transformers' attention_factor at 1.
  return { headDim: config.headDim, maxPositions, invFreq: ropeInvFreq(config, options), attentionFactor: 1 };
}

function invFreqFloat64(c: RopeParams): Float32Array {
  const d = c.headDim;
  const out = new Float32Array(d / 2);
  const s = c.ropeScaling;
  for (let i = 0; i < d / 2; i++) {
    let inv = 1 / c.ropeTheta ** ((2 * i) / d);
    if (s?.type === 'linear') {
      inv /= s.factor;
    } else if (s?.type === 'llama3') {
      const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      const wavelen = (2 * Math.PI) / inv;
      if (wavelen > lowWavelen) {
        inv /= s.factor;
      } else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv = ((1 - smooth) * inv) / s.factor + smooth * inv;
      }
    }
    out[i] = inv;
  }
  return out;
}

function invFreqTransformers(c: RopeParams): Float32Array {
  const f = Math.fround;
  const d = c.headDim;
  const out = new Float32Array(d / 2);
  const s = c.ropeScaling;
  const theta = f(c.ropeTheta);
  for (let i = 0; i < d / 2; i++) {
    // inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    const exponent = f((2 * i) / d);
    let inv = f(1 / f(theta ** exponent));
    if (s?.type === 'linear') {
      // inv_freq /= factor
      inv = f(inv / f(s.factor));
    } else if (s?.type === 'llama3') {
      const old = s.originalMaxPositionEmbeddings;
      const lowWavelen = f(old / s.lowFreqFactor);
      const highWavelen = f(old / s.highFreqFactor);
      // wavelen = 2 * math.pi / inv_freq  (evaluated as reciprocal(inv_freq) * (2 * pi))
      const wavelen = f(f(1 / inv) * f(2 * Math.PI));
      // inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
      const llama = wavelen > lowWavelen ? f(inv / f(s.factor)) : inv;
      // smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
      const smooth = f(f(f(f(1 / wavelen) * f(old)) - f(s.lowFreqFactor)) / f(s.highFreqFactor - s.lowFreqFactor));
      // smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
      const smoothed = f(f(f(f(1 - smooth) * llama) / f(s.factor)) + f(smooth * llama));
      const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      inv = medium ? smoothed : llama;
    }
    out[i] = inv;
  }
  return out;
}
