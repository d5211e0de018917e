import type { Backend, Tensor } from '@arkvale/core';
import { invalidArgument, randomFloats, seededUniform } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { parseLlamaConfig } from './config.js';
import { expectedLlamaTensors, stackLayerWeights, type LlamaLayerWeights, type LlamaWeights } from './weights.js';
import { checkpointCut, tensorParallelLayout, type Cut, type ShardOf } from './shard.js';

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
  const layout = options.shard ? tensorParallelLayout(config, options.shard.rank, options.shard.size) : null;
  // A rank's share of a tensor, cut as a checkpoint's tensor of that name is (checkpointCut).
  const part = (key: string, t: Tensor): Tensor => (layout ? cutOnBackend(backend, t, checkpointCut(config, layout, key)) : t);
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
        q: part('q', matrix(l.q.shape)),
        k: part('k', matrix(l.k.shape)),
        v: part('v', matrix(l.v.shape)),
        o: part('o', matrix(l.o.shape)),
        postNorm: ones(config.hiddenSize),
        gate: part('gate', matrix(l.gate.shape)),
        up: part('up', matrix(l.up.shape)),
        down: part('down', matrix(l.down.shape)),
      }),
  );
  const embedding = matrix(exp.embedTokens.shape);
  const lmHead = matrix(exp.lmHead.shape);
  // Drawn last, so that every other weight is the same with or without it.
  const embedTokens = shared > 0 ? withSharedRow(backend, embedding, matrix([1, config.hiddenSize], scale * shared)) : embedding;
  const norm = ones(config.hiddenSize);
  return {
    embedTokens: part('embedTokens', embedTokens),
    layers,
    norm,
    lmHead: part('lmHead', lmHead),
    tiedLmHead: false,
    totalBytes: 0,
    ...(layout ? { shard: { ...options.shard!, vocabStart: layout.vocab.start, vocabCount: layout.vocab.count } } : {}),
  };
}

/**
 * `cut` of a whole [rows, cols] tensor made on the backend, the whole freed: rows by
 * `gatherRows`; an even block of columns by viewing each row as its blocks and
 * gathering one block of every row; a zero row appended by `concatRows`.
 */
function cutOnBackend(backend: Backend, t: Tensor, cut: Cut): Tensor {
  const gather = (from: Tensor, indices: number[]): Tensor => {
    const i = backend.fromArray(new Int32Array(indices), [indices.length], 'i32');
    const out = backend.gatherRows(from, i);
    backend.dispose(i);
    return out;
  };
  let out = t;
  if (cut.rows) {
    out = gather(
      t,
      cut.rows.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.start + i)),
    );
  } else if (cut.columns) {
    const [rows, cols] = t.shape;
    const [r] = cut.columns;
    if (cut.columns.length !== 1 || cols % r.count !== 0 || r.start % r.count !== 0) {
      throw invalidArgument(`columns ${cut.columns.map((c) => `[${c.start}, ${c.start + c.count})`).join(', ')} are not one even block of ${cols}`);
    }
    const blocks = cols / r.count;
    const view = backend.reshape(t, [rows * blocks, r.count]);
    out = gather(
      view,
      Array.from({ length: rows }, (_, h) => h * blocks + r.start / r.count),
    );
    backend.dispose(view);
  }
  if (out !== t) backend.dispose(t);
  if (!cut.zeroRow) return out;
  // The other ranks' tokens read this row: zeros, as a float32 checkpoint would give them.
  const zero = backend.fromBytes(new Uint8Array(out.shape[1] * 4), [1, out.shape[1]], 'f32');
  const padded = backend.concatRows([out, zero]);
  backend.dispose(out);
  backend.dispose(zero);
  return padded;
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
