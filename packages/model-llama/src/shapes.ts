import type { Backend, Tensor } from '@arkvale/core';
import { invalidArgument, randomFloats, seededUniform } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { parseLlamaConfig } from './config.js';
import { expectedLlamaTensors, stackLayerWeights, type LlamaLayerWeights, type LlamaWeights } from './weights.js';
import { tensorParallelLayout, type IndexRange, type ShardOf } from './shard.js';

/**
 * Model shapes for benchmarks, as Hugging Face config.json fields: the architectures
 * the paper and the peers measure, and the bundled model's. A random-weight model of
 * one of them runs every kernel on real sizes without a 13 GB checkpoint.
 */
export const LLAMA_SHAPES = {
  'llama2-7b': {
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    vocab_size: 32000,
    rope_theta: 10000,
    max_position_embeddings: 32768,
  },
  'llama3-8b': {
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    vocab_size: 128256,
    rope_theta: 500000,
    max_position_embeddings: 32768,
  },
  // Too large for one GPU in f16 (138 GB): the shape tensor parallelism is measured at (issue 25).
  'llama2-70b': {
    hidden_size: 8192,
    intermediate_size: 28672,
    num_hidden_layers: 80,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    vocab_size: 32000,
    rope_theta: 10000,
    max_position_embeddings: 32768,
  },
  'tiny-retrieval': {
    hidden_size: 512,
    intermediate_size: 1536,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 128,
    vocab_size: 856,
    rope_theta: 500000,
    max_position_embeddings: 32768,
  },
} as const;

export type LlamaShapeName = keyof typeof LLAMA_SHAPES;

export function shapeConfig(name: string): LlamaConfig {
  const shape = (LLAMA_SHAPES as Record<string, object>)[name];
  if (!shape) throw invalidArgument(`unknown model shape "${name}"; expected one of: ${Object.keys(LLAMA_SHAPES).join(', ')}`);
  return parseLlamaConfig(
    { model_type: 'llama', architectures: ['LlamaForCausalLM'], rms_norm_eps: 1e-5, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, ...shape },
    `shape ${name}`,
  );
}

/** A backend that makes random tensors on its own device (the CUDA backend's fill kernel). */
interface RandomSource {
  randomUniform(shape: readonly number[], scale: number, seed: number): Tensor;
}

function hasRandom(b: Backend): b is Backend & RandomSource {
  return typeof (b as Partial<RandomSource>).randomUniform === 'function';
}

export interface RandomWeightsOptions {
  /**
   * Every token embedding gets one shared random vector of this many times the
   * per-token part's size (0, the default: independent weights). Trained models'
   * embeddings share such a direction, and it gives attention their locality: the top
   * pages change little from one step to the next. Without it the queries of random
   * weights carry no structure and a budgeted policy recalls most of its top-k every
   * step (about 15 of 29 pages per layer on the bundled shape at 8k tokens, against
   * 0.1-0.4 with 0.3 to 1 of it), which no trained model does.
   */
  readonly sharedEmbedding?: number;
  /**
   * Only this tensor-parallel rank's share: each tensor is drawn whole, its share cut on
   * the backend and the rest freed at once, so the backend never holds more than the
   * share and one tensor. The values are `shardLlamaWeights` of the whole weights'.
   */
  readonly shard?: ShardOf;
}

/**
 * Random weights of `config`'s shape: matrices uniform with the variance of a
 * 0.02-normal initialiser (what transformers uses), norms at 1. Made on the device
 * when the backend can (nothing crosses the bus), else on the host.
 */
export function randomLlamaWeights(config: LlamaConfig, backend: Backend, seed = 1, options: RandomWeightsOptions = {}): LlamaWeights {
  const shared = options.sharedEmbedding ?? 0;
  if (!(shared >= 0 && Number.isFinite(shared))) throw invalidArgument(`sharedEmbedding must be a finite number >= 0, got ${shared}`);
  const exp = expectedLlamaTensors(config);
  const cut = options.shard ? shareCutter(config, backend, options.shard) : null;
  let next = seed;
  // U(-a, a) has variance a^2 / 3: a = 0.02 * sqrt(3).
  const scale = 0.02 * Math.sqrt(3);
  const matrix = (shape: readonly number[], size = scale): Tensor => {
    const s = next++;
    if (hasRandom(backend)) return backend.randomUniform(shape, size, s);
    const n = shape.reduce((a, b) => a * b, 1);
    return floats(randomFloats(seededUniform(s), n, size), shape);
  };
  // As a float32 checkpoint would give them: the backend stores its own float type.
  const floats = (values: Float32Array, shape: readonly number[]) => backend.fromBytes(new Uint8Array(values.buffer), shape, 'f32');
  const ones = (n: number): Tensor => floats(new Float32Array(n).fill(1), [n]);
  // Each tensor drawn on its own, then stacked: the values do not depend on the layout.
  const layers = exp.layers.map(
    (l): LlamaLayerWeights =>
      stackLayerWeights(backend, {
        inputNorm: ones(config.hiddenSize),
        q: cut ? cut.rows(matrix(l.q.shape), cut.q) : matrix(l.q.shape),
        k: cut ? cut.rows(matrix(l.k.shape), cut.kv) : matrix(l.k.shape),
        v: cut ? cut.rows(matrix(l.v.shape), cut.kv) : matrix(l.v.shape),
        o: cut ? cut.columns(matrix(l.o.shape), cut.q) : matrix(l.o.shape),
        postNorm: ones(config.hiddenSize),
        gate: cut ? cut.rows(matrix(l.gate.shape), cut.mlp) : matrix(l.gate.shape),
        up: cut ? cut.rows(matrix(l.up.shape), cut.mlp) : matrix(l.up.shape),
        down: cut ? cut.columns(matrix(l.down.shape), cut.mlp) : matrix(l.down.shape),
      }),
  );
  const embedding = matrix(exp.embedTokens.shape);
  const lmHead = matrix(exp.lmHead.shape);
  // Drawn last, so that every other weight is the same with or without it.
  const embedTokens = shared > 0 ? withSharedRow(backend, embedding, matrix([1, config.hiddenSize], scale * shared)) : embedding;
  const norm = ones(config.hiddenSize);
  if (!cut) return { embedTokens, layers, norm, lmHead, tiedLmHead: false, totalBytes: 0 };
  // A rank's embedding rows and a zero row after them (the other ranks' tokens read it), as shardLlamaWeights cuts them.
  const rows = cut.rows(embedTokens, cut.vocab);
  const zero = backend.fromBytes(new Uint8Array(config.hiddenSize * 4), [1, config.hiddenSize], 'f32');
  const table = backend.concatRows([rows, zero]);
  backend.dispose(rows);
  backend.dispose(zero);
  const { rank, size } = options.shard!;
  const vocab = cut.vocab;
  return {
    embedTokens: table,
    layers,
    norm,
    lmHead: cut.rows(lmHead, vocab),
    tiedLmHead: false,
    totalBytes: 0,
    shard: { rank, size, vocabStart: vocab.start, vocabCount: vocab.count },
  };
}

/**
 * Cuts a rank's share from a whole tensor on the backend, freeing the whole: rows with
 * `gatherRows`; an even block of columns by viewing each row as its blocks (one a
 * rank) and gathering this rank's block of every row.
 */
function shareCutter(config: LlamaConfig, backend: Backend, shard: ShardOf) {
  const layout = tensorParallelLayout(config, shard.rank, shard.size);
  const D = config.headDim;
  const heads = (r: IndexRange): IndexRange => ({ start: r.start * D, count: r.count * D });
  const gather = (t: Tensor, indices: number[]): Tensor => {
    const i = backend.fromArray(new Int32Array(indices), [indices.length], 'i32');
    const out = backend.gatherRows(t, i);
    backend.dispose(i);
    backend.dispose(t);
    return out;
  };
  return {
    q: heads(layout.qHeads),
    kv: heads(layout.kvHeads),
    mlp: layout.mlp,
    vocab: layout.vocab,
    rows: (t: Tensor, r: IndexRange): Tensor =>
      gather(
        t,
        Array.from({ length: r.count }, (_, i) => r.start + i),
      ),
    columns: (t: Tensor, r: IndexRange): Tensor => {
      const [rows, cols] = t.shape;
      if (cols % r.count !== 0 || r.start % r.count !== 0) throw invalidArgument(`columns [${r.start}, ${r.start + r.count}) are not an even block of ${cols}`);
      const blocks = cols / r.count;
      const view = backend.reshape(t, [rows * blocks, r.count]);
      const out = gather(
        view,
        Array.from({ length: rows }, (_, h) => h * blocks + r.start / r.count),
      );
      backend.dispose(t);
      return out;
    },
  };
}

/** table + row in every row ([V, H] + [1, H]), made with the backend's own gather and add. */
function withSharedRow(backend: Backend, table: Tensor, row: Tensor): Tensor {
  const rows = table.shape[0];
  const zeros = backend.fromArray(new Int32Array(rows), [rows], 'i32');
  const repeated = backend.gatherRows(row, zeros);
  const sum = backend.add(table, repeated);
  for (const t of [table, row, zeros, repeated]) backend.dispose(t);
  return sum;
}
