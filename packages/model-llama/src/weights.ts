import { ArkvaleError, type Backend, type Tensor } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { SafetensorsCheckpoint, type TensorEntry } from './safetensors.js';
import { checkpointCut, loadShare, type ShardOf, tensorParallelLayout } from './shard.js';

/**
 * One decoder layer's weights, in Hugging Face's [out, in] layout. The q, k and v
 * projections are stacked into one matrix, and so are gate and up: a decode step's
 * products have a handful of rows, and one product over the stacked rows reads the
 * same bytes in one launch where there were three (two) (Backend.ropeQkv and
 * siluGatePacked split the result).
 */
export interface LlamaLayerWeights {
  /** input_layernorm [H] */
  readonly inputNorm: Tensor;
  /** q_proj, k_proj and v_proj stacked: [(numHeads + 2 numKvHeads) * headDim, H] */
  readonly qkv: Tensor;
  /** o_proj [H, numHeads * headDim] */
  readonly o: Tensor;
  /** post_attention_layernorm [H] */
  readonly postNorm: Tensor;
  /** gate_proj and up_proj stacked: [2I, H] */
  readonly gateUp: Tensor;
  /** down_proj [H, I] */
  readonly down: Tensor;
  /** q_proj, k_proj and v_proj biases stacked, [1, (numHeads + 2 numKvHeads) * headDim] (Qwen2), or absent. */
  readonly qkvBias?: Tensor;
}

/** A layer's weights as the checkpoint names them, one tensor each. */
export type LlamaCheckpointLayer = Record<LayerKey, Tensor> & Partial<Record<BiasKey, Tensor>>;

/**
 * Stacks a layer's q/k/v and gate/up on the backend, then disposes the separate
 * tensors; if a stack cannot be made (out of memory), the separate tensors are left as
 * they were and nothing else is held.
 */
export function stackLayerWeights(backend: Backend, l: LlamaCheckpointLayer): LlamaLayerWeights {
  const qkv = backend.concatRows([l.q, l.k, l.v]);
  let gateUp: Tensor;
  let qkvBias: Tensor | undefined;
  try {
    gateUp = backend.concatRows([l.gate, l.up]);
    if (l.qBias && l.kBias && l.vBias) {
      // Stacked as one column, then viewed as one row: the biases of the q/k/v product's outputs.
      const column = (t: Tensor) => backend.reshape(t, [t.shape[0], 1]);
      const stacked = backend.concatRows([column(l.qBias), column(l.kBias), column(l.vBias)]);
      qkvBias = backend.reshape(stacked, [1, stacked.shape[0]]);
    }
  } catch (e) {
    backend.dispose(qkv);
    throw e;
  }
  for (const t of [l.q, l.k, l.v, l.gate, l.up, l.qBias, l.kBias, l.vBias]) if (t) backend.dispose(t);
  return { inputNorm: l.inputNorm, qkv, o: l.o, postNorm: l.postNorm, gateUp, down: l.down, ...(qkvBias ? { qkvBias } : {}) };
}

export interface LlamaWeights {
  /** embed_tokens [V, H] */
  readonly embedTokens: Tensor;
  readonly layers: readonly LlamaLayerWeights[];
  /** final norm [H] */
  readonly norm: Tensor;
  /** lm_head [V, H]; the very same handle as `embedTokens` when `tiedLmHead`. */
  readonly lmHead: Tensor;
  readonly tiedLmHead: boolean;
  /** Checkpoint bytes read. */
  readonly totalBytes: number;
  /** Set on a tensor-parallel rank's share of the weights (`shardLlamaWeights`, or `loadLlamaWeights` with `shard`); the layers then hold the rank's heads and MLP columns. */
  readonly shard?: WeightShard;
}

/**
 * What a tensor-parallel rank's weights hold: rank `rank` of `size`, whose embedding and
 * LM head hold the vocabulary rows [vocabStart, vocabStart + vocabCount). The
 * embedding has one more row after them, all zeros, which tokens outside that range
 * read (their rows come from the other ranks in the all-reduce).
 */
export interface WeightShard {
  readonly rank: number;
  readonly size: number;
  readonly vocabStart: number;
  readonly vocabCount: number;
}

export type LoadProgress = (loadedBytes: number, totalBytes: number) => void;

export interface LoadWeightsOptions {
  /** Called after each tensor (and once with 0 before the first). */
  readonly onProgress?: LoadProgress;
  /** An already opened checkpoint of `dir` (e.g. ModelDir.checkpoint); opened from `dir` otherwise. */
  readonly checkpoint?: SafetensorsCheckpoint;
  /**
   * Only this tensor-parallel rank's share (what `shardLlamaWeights` makes of the whole
   * weights), each tensor cut from its bytes as read: a rank never holds the others'.
   */
  readonly shard?: ShardOf;
}

/** A layer's tensors in the checkpoint. */
const LAYER_KEYS = ['inputNorm', 'q', 'k', 'v', 'o', 'postNorm', 'gate', 'up', 'down'] as const;
type LayerKey = (typeof LAYER_KEYS)[number];
/** A layer's q/k/v biases (Qwen2). */
const BIAS_KEYS = ['qBias', 'kBias', 'vBias'] as const;
type BiasKey = (typeof BIAS_KEYS)[number];
/** The tensors a layer of this model reads. */
const layerKeys = (config: LlamaConfig): readonly (LayerKey | BiasKey)[] => (config.qkvBias ? [...LAYER_KEYS, ...BIAS_KEYS] : LAYER_KEYS);
/** A layer's tensors once loaded (LlamaLayerWeights). */
const STACKED_KEYS = ['inputNorm', 'qkv', 'o', 'postNorm', 'gateUp', 'down'] as const;

interface Expected {
  readonly name: string;
  readonly shape: readonly number[];
  /** Where the expected shape comes from, for error messages. */
  readonly why: string;
}

/** Hugging Face tensor names and expected shapes of a LLaMA checkpoint. */
export function expectedLlamaTensors(config: LlamaConfig): {
  embedTokens: Expected;
  norm: Expected;
  lmHead: Expected;
  layers: (Record<LayerKey, Expected> & Partial<Record<BiasKey, Expected>>)[];
} {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim } = config;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const hs = `hidden_size ${H}`;
  const qs = `num_attention_heads ${numHeads} x head_dim ${headDim}`;
  const kvs = `num_key_value_heads ${numKvHeads} x head_dim ${headDim}`;
  const is = `intermediate_size ${I}`;
  const layers = Array.from({ length: config.numLayers }, (_, i) => {
    const p = `model.layers.${i}.`;
    return {
      inputNorm: { name: `${p}input_layernorm.weight`, shape: [H], why: hs },
      q: { name: `${p}self_attn.q_proj.weight`, shape: [q, H], why: `${qs}, ${hs}` },
      k: { name: `${p}self_attn.k_proj.weight`, shape: [kv, H], why: `${kvs}, ${hs}` },
      v: { name: `${p}self_attn.v_proj.weight`, shape: [kv, H], why: `${kvs}, ${hs}` },
      o: { name: `${p}self_attn.o_proj.weight`, shape: [H, q], why: `${hs}, ${qs}` },
      postNorm: { name: `${p}post_attention_layernorm.weight`, shape: [H], why: hs },
      gate: { name: `${p}mlp.gate_proj.weight`, shape: [I, H], why: `${is}, ${hs}` },
      up: { name: `${p}mlp.up_proj.weight`, shape: [I, H], why: `${is}, ${hs}` },
      down: { name: `${p}mlp.down_proj.weight`, shape: [H, I], why: `${hs}, ${is}` },
      ...(config.qkvBias
        ? {
            qBias: { name: `${p}self_attn.q_proj.bias`, shape: [q], why: qs },
            kBias: { name: `${p}self_attn.k_proj.bias`, shape: [kv], why: kvs },
            vBias: { name: `${p}self_attn.v_proj.bias`, shape: [kv], why: kvs },
          }
        : {}),
    };
  });
  return {
    embedTokens: { name: 'model.embed_tokens.weight', shape: [V, H], why: `vocab_size ${V}, ${hs}` },
    norm: { name: 'model.norm.weight', shape: [H], why: hs },
    lmHead: { name: 'lm_head.weight', shape: [V, H], why: `vocab_size ${V}, ${hs}` },
    layers,
  };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkEntry(ckpt: SafetensorsCheckpoint, exp: Expected, config: LlamaConfig): TensorEntry {
  const e = ckpt.find(exp.name);
  if (e === undefined) {
    throw new ArkvaleError('MODEL_FILE', `checkpoint ${ckpt.location} is missing tensor "${exp.name}" (expected shape [${exp.shape.join(', ')}])`);
  }
  if (!sameShape(e.shape, exp.shape)) {
    throw new ArkvaleError(
      'MODEL_FILE',
      `tensor "${exp.name}" in ${e.file} has shape [${e.shape.join(', ')}], expected [${exp.shape.join(', ')}] ` + `(${exp.why}, from ${config.source})`,
    );
  }
  return e;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface WeightPlanItem {
  /** "embedTokens", "norm", "lmHead" or "<layer>.<key>" (e.g. "0.q"). */
  readonly key: string;
  readonly entry: TensorEntry;
}

/**
 * Checks that `ckpt` holds every tensor `config` needs, each with the exact shape, and
 * returns what to read (the lm_head left out when tied). Throws ArkvaleError
 * ('MODEL_FILE') naming the tensor, the expected and the actual shape; reads no data.
 */
export function planLlamaWeights(ckpt: SafetensorsCheckpoint, config: LlamaConfig): WeightPlanItem[] {
  const exp = expectedLlamaTensors(config);
  const allowed = config.qkvBias ? /^model\.layers\.\d+\.self_attn\.[qkv]_proj\.bias$/ : null;
  for (const name of ckpt.names()) {
    if (/^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.bias$/.test(name) && !allowed?.test(name)) {
      throw new ArkvaleError('UNSUPPORTED_MODEL', `checkpoint ${ckpt.location} has bias tensor "${name}"; biased projections are not supported`);
    }
  }
  const plan: WeightPlanItem[] = [];
  const add = (key: string, e: Expected): void => {
    plan.push({ key, entry: checkEntry(ckpt, e, config) });
  };
  add('embedTokens', exp.embedTokens);
  const keys = layerKeys(config);
  exp.layers.forEach((layer, i) => keys.forEach((k) => add(`${i}.${k}`, layer[k]!)));
  add('norm', exp.norm);
  if (!config.tieWordEmbeddings) {
    if (!ckpt.has(exp.lmHead.name)) {
      throw new ArkvaleError(
        'MODEL_FILE',
        `checkpoint ${ckpt.location} is missing tensor "${exp.lmHead.name}" (expected shape [${exp.lmHead.shape.join(', ')}]) ` +
          `and ${config.source} does not set tie_word_embeddings`,
      );
    }
    add('lmHead', exp.lmHead);
  }
  return plan;
}

/**
 * Loads a LLaMA checkpoint's weights into `backend` tensors. Every expected tensor is
 * checked for presence and exact shape before any data is read; then each tensor is
 * read on its own (one buffer per tensor, handed to `backend.fromBytes` and dropped),
 * so the host never holds a second full copy of the weights; each layer's q/k/v and
 * gate/up are stacked on the backend once the layer is in. The lm_head is the
 * embedding when `tie_word_embeddings` is true (as in transformers, even if the file
 * also stores an lm_head). On failure the tensors loaded so far are disposed.
 */
export async function loadLlamaWeights(dir: string, config: LlamaConfig, backend: Backend, options: LoadWeightsOptions = {}): Promise<LlamaWeights> {
  // Checked before the checkpoint is opened: a size that does not divide the model is refused at once.
  const layout = options.shard ? tensorParallelLayout(config, options.shard.rank, options.shard.size) : undefined;
  const ckpt = options.checkpoint ?? SafetensorsCheckpoint.open(dir);
  const tied = config.tieWordEmbeddings;
  let plan: WeightPlanItem[];
  try {
    plan = planLlamaWeights(ckpt, config);
  } catch (e) {
    if (options.checkpoint === undefined) ckpt.close();
    throw e;
  }

  const totalBytes = plan.reduce((n, p) => n + p.entry.byteLength, 0);
  const loaded = new Map<string, Tensor>();
  const layers: LlamaLayerWeights[] = [];
  let loadedBytes = 0;
  options.onProgress?.(0, totalBytes);
  try {
    for (const { key, entry } of plan) {
      loaded.set(
        key,
        layout ? loadShare(ckpt.readBytes(entry), entry.shape, entry.dtype, checkpointCut(config, layout, key), backend) : ckpt.load(entry, backend),
      );
      loadedBytes += entry.byteLength;
      // A layer is stacked as soon as its last tensor is in: one layer's copy at a time.
      const keys = layerKeys(config);
      if (key === `${layers.length}.${keys[keys.length - 1]}`) {
        const layer = {} as LlamaCheckpointLayer;
        const i = layers.length;
        for (const k of keys) layer[k] = loaded.get(`${i}.${k}`)!;
        layers.push(stackLayerWeights(backend, layer));
        for (const k of keys) loaded.delete(`${i}.${k}`);
      }
      options.onProgress?.(loadedBytes, totalBytes);
      await yieldToEventLoop();
    }
  } catch (e) {
    for (const t of loaded.values()) backend.dispose(t);
    for (const layer of layers) disposeLayer(layer, backend);
    throw e;
  } finally {
    if (options.checkpoint === undefined) ckpt.close();
  }

  const t = (key: string): Tensor => loaded.get(key)!;
  const embedTokens = t('embedTokens');
  if (layout) {
    const { vocab } = layout;
    // A share's embedding has a zero row after its vocabulary: a tied LM head is the rows before it.
    const lmHead = tied ? backend.sliceRows(embedTokens, 0, vocab.count) : t('lmHead');
    const shard = { rank: layout.rank, size: layout.size, vocabStart: vocab.start, vocabCount: vocab.count };
    return { embedTokens, layers, norm: t('norm'), lmHead, tiedLmHead: false, totalBytes, shard };
  }
  return { embedTokens, layers, norm: t('norm'), lmHead: tied ? embedTokens : t('lmHead'), tiedLmHead: tied, totalBytes };
}

/** Disposes every tensor of `weights` (the tied lm_head once). */
export function disposeLlamaWeights(weights: LlamaWeights, backend: Backend): void {
  backend.dispose(weights.embedTokens);
  for (const layer of weights.layers) disposeLayer(layer, backend);
  backend.dispose(weights.norm);
  if (!weights.tiedLmHead) backend.dispose(weights.lmHead);
}

function disposeLayer(layer: LlamaLayerWeights, backend: Backend): void {
  for (const k of STACKED_KEYS) backend.dispose(layer[k]);
  if (layer.qkvBias) backend.dispose(layer.qkvBias);
}
