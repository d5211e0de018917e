import type { Backend, Tensor } from '@arkvale/core';
import { ArkvaleError, invalidArgument } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import type { LlamaLayerWeights, LlamaWeights } from './weights.js';

/*
 * Megatron-style sharding of LLaMA weights for tensor parallelism (docs/DESIGN.md,
 * "Tensor parallelism"). Rank r of N holds query heads, KV heads, MLP columns and
 * vocabulary rows of its own: the q/k/v rows of its heads, the o_proj columns that read
 * them, the gate/up rows and down_proj columns of its MLP columns, and its vocabulary's
 * rows of the embedding and LM head. Each rank's o_proj and down_proj give its share
 * of the output, summed by an all-reduce; the embedding is a lookup in the rank's rows
 * (zeros for the other ranks' tokens) and an all-reduce; the logits are the ranks'
 * vocabulary slices side by side (an all-gather).
 */

/** Consecutive indices [start, start + count). */
export interface IndexRange {
  readonly start: number;
  readonly count: number;
}

/** What rank `rank` of a tensor-parallel group of `size` holds of a model. */
export interface TensorParallelLayout {
  readonly rank: number;
  readonly size: number;
  readonly qHeads: IndexRange;
  /**
   * Its share of the KV heads; or, in a group of more ranks than KV heads, the one KV
   * head its query heads read, held by size / numKvHeads ranks (replicated, as vLLM does).
   */
  readonly kvHeads: IndexRange;
  /** Columns of the MLP's intermediate activation (gate/up rows, down_proj columns). */
  readonly mlp: IndexRange;
  /** Rows of the embedding and LM head. */
  readonly vocab: IndexRange;
}

/** The rank and group size a rank's weights are loaded or sharded for. */
export interface ShardOf {
  readonly rank: number;
  readonly size: number;
}

/**
 * The share of rank `rank` in a group of `size`. Query heads, MLP columns and the
 * vocabulary are split evenly; KV heads too, or replicated when `size` is a multiple
 * of them. Anything else is refused (UNSUPPORTED_MODEL) naming the field.
 */
export function tensorParallelLayout(config: LlamaConfig, rank: number, size: number): TensorParallelLayout {
  if (!Number.isInteger(size) || size < 1) throw invalidArgument(`the tensor-parallel size must be a positive integer, got ${String(size)}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw invalidArgument(`rank ${String(rank)} is outside a tensor-parallel group of ${size}`);
  const { numHeads, numKvHeads, intermediateSize, vocabSize } = config;
  const refuse = (what: string) => new ArkvaleError('UNSUPPORTED_MODEL', `tensor-parallel size ${size} does not divide ${what} of ${config.source}`);
  if (numHeads % size !== 0) throw refuse(`the ${numHeads} query heads (num_attention_heads)`);
  if (numKvHeads % size !== 0 && size % numKvHeads !== 0) {
    throw refuse(`the ${numKvHeads} KV heads (num_key_value_heads), nor is it a multiple of them (which replicates each KV head),`);
  }
  if (intermediateSize % size !== 0) throw refuse(`intermediate_size ${intermediateSize}`);
  if (vocabSize % size !== 0) throw refuse(`vocab_size ${vocabSize} (a padded vocabulary is not built)`);
  const share = (total: number): IndexRange => ({ start: (rank * total) / size, count: total / size });
  const kvHeads = numKvHeads % size === 0 ? share(numKvHeads) : { start: Math.floor((rank * numKvHeads) / size), count: 1 };
  return { rank, size, qHeads: share(numHeads), kvHeads, mlp: share(intermediateSize), vocab: share(vocabSize) };
}

/**
 * A rank's model: `config` with the rank's query heads, KV heads and MLP columns (the
 * vocabulary stays whole: the logits are gathered). What the rank's `LlamaForward`
 * and the geometry of its `KvCache` are built from.
 */
export function tensorParallelConfig(config: LlamaConfig, size: number): LlamaConfig {
  const layout = tensorParallelLayout(config, 0, size);
  return { ...config, numHeads: layout.qHeads.count, numKvHeads: layout.kvHeads.count, intermediateSize: layout.mlp.count };
}

/**
 * The whole model's config as `size` ranks store its KV pages: every rank's KV heads, so
 * a KV head replicated on several ranks counts once on each.
 */
export function storedKvConfig(config: LlamaConfig, size: number): LlamaConfig {
  return { ...config, numKvHeads: tensorParallelConfig(config, size).numKvHeads * size };
}

const width = (ranges: readonly IndexRange[]): number => ranges.reduce((a, r) => a + r.count, 0);

/** Rows `ranges` of a row-major matrix of `cols` columns of `elementBytes` bytes each, in order. */
export function takeRows(data: Uint8Array, cols: number, elementBytes: number, ranges: readonly IndexRange[]): Uint8Array {
  const row = cols * elementBytes;
  const out = new Uint8Array(width(ranges) * row);
  let at = 0;
  for (const r of ranges) {
    out.set(data.subarray(r.start * row, (r.start + r.count) * row), at);
    at += r.count * row;
  }
  return out;
}

/** Columns `ranges` of a row-major matrix of `cols` columns of `elementBytes` bytes each, in order. */
export function takeColumns(data: Uint8Array, cols: number, elementBytes: number, ranges: readonly IndexRange[]): Uint8Array {
  const row = cols * elementBytes;
  const rows = data.length / row;
  const outRow = width(ranges) * elementBytes;
  const out = new Uint8Array(rows * outRow);
  for (let i = 0; i < rows; i++) {
    let at = i * outRow;
    for (const r of ranges) {
      out.set(data.subarray(i * row + r.start * elementBytes, i * row + (r.start + r.count) * elementBytes), at);
      at += r.count * elementBytes;
    }
  }
  return out;
}

/** How a rank's share of a tensor is cut from it: rows, columns, or the whole tensor; and whether a zero row follows. */
export interface Cut {
  readonly rows?: readonly IndexRange[];
  readonly columns?: readonly IndexRange[];
  readonly zeroRow?: boolean;
}

/** A [rows, cols] tensor's bytes cut as `cut` says: the bytes and their shape. */
function cutBytes(data: Uint8Array, shape: readonly number[], elementBytes: number, cut: Cut): { bytes: Uint8Array; shape: number[] } {
  // 1-D tensors (norms, biases) are one column.
  const [rows, cols] = shape.length === 1 ? [shape[0], 1] : [shape[0], shape[1]];
  let bytes = data;
  let outShape = [...shape];
  if (cut.rows) {
    bytes = takeRows(data, cols, elementBytes, cut.rows);
    outShape = shape.length === 1 ? [width(cut.rows)] : [width(cut.rows), cols];
  } else if (cut.columns) {
    bytes = takeColumns(data, cols, elementBytes, cut.columns);
    outShape = [rows, width(cut.columns)];
  }
  if (cut.zeroRow) {
    const padded = new Uint8Array(bytes.length + cols * elementBytes);
    padded.set(bytes);
    bytes = padded;
    outShape = [outShape[0] + 1, cols];
  }
  return { bytes, shape: outShape };
}

/** The share's row ranges of a [q | k | v] stack (weight rows, or bias elements), and of [gate | up]. */
function stackedRanges(config: LlamaConfig, layout: TensorParallelLayout): { qkv: IndexRange[]; gateUp: IndexRange[] } {
  const { numHeads: Hq, numKvHeads: Hkv, headDim: D, intermediateSize: I } = config;
  const heads = (r: IndexRange, first: number): IndexRange => ({ start: (first + r.start) * D, count: r.count * D });
  return {
    qkv: [heads(layout.qHeads, 0), heads(layout.kvHeads, Hq), heads(layout.kvHeads, Hq + Hkv)],
    gateUp: [layout.mlp, { start: I + layout.mlp.start, count: layout.mlp.count }],
  };
}

/**
 * How the share of `layout`'s rank is cut from a checkpoint tensor, by its key in
 * `planLlamaWeights` ("embedTokens", "lmHead", "norm", "<layer>.<name>").
 */
export function checkpointCut(config: LlamaConfig, layout: TensorParallelLayout, key: string): Cut {
  const { headDim: D } = config;
  const qRows = [{ start: layout.qHeads.start * D, count: layout.qHeads.count * D }];
  const kvRows = [{ start: layout.kvHeads.start * D, count: layout.kvHeads.count * D }];
  const name = key.includes('.') ? key.slice(key.indexOf('.') + 1) : key;
  switch (name) {
    case 'embedTokens':
      return { rows: [layout.vocab], zeroRow: true };
    case 'lmHead':
      return { rows: [layout.vocab] };
    case 'q':
    case 'qBias':
      return { rows: qRows };
    case 'k':
    case 'v':
    case 'kBias':
    case 'vBias':
      return { rows: kvRows };
    case 'o':
      return { columns: qRows };
    case 'gate':
    case 'up':
      return { rows: [layout.mlp] };
    case 'down':
      return { columns: [layout.mlp] };
    default:
      // Norms.
      return {};
  }
}

/** Reads a rank's share of one checkpoint tensor (bytes as stored) onto `backend`. */
export function loadShare(data: Uint8Array, shape: readonly number[], dtype: 'f32' | 'f16' | 'bf16', cut: Cut, backend: Backend): Tensor {
  const share = cutBytes(data, shape, dtype === 'f32' ? 4 : 2, cut);
  return backend.fromBytes(share.bytes, share.shape, dtype);
}

/**
 * Rank `rank`'s share of `weights` (loaded whole on `source`), made on `target`:
 * - q/k/v (stacked): the rows of its query heads, then of its KV heads' k and v; Qwen2's
 *   q/k/v biases the same elements;
 * - o_proj: the columns its query heads feed;
 * - gate/up (stacked): the rows of its MLP columns in each half; down_proj: those columns;
 * - embedding: its vocabulary rows and a zero row; LM head: its vocabulary rows (its
 *   own tensor even when tied to the embedding);
 * - norms: whole.
 * The tensors pass through the host in float32. `loadLlamaWeights` with `shard` reads
 * the same share from the checkpoint instead, tensor by tensor.
 */
export function shardLlamaWeights(
  weights: LlamaWeights,
  config: LlamaConfig,
  rank: number,
  size: number,
  source: Backend,
  target: Backend = source,
): LlamaWeights {
  if (weights.shard) throw invalidArgument(`these weights are already rank ${weights.shard.rank} of ${weights.shard.size}`);
  const layout = tensorParallelLayout(config, rank, size);
  const { hiddenSize: H, numHeads: Hq, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = config;
  const share = (t: Tensor, shape: readonly number[], what: string, cut: Cut): Tensor => {
    if (t.shape.join(',') !== shape.join(','))
      throw invalidArgument(`${what} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from ${config.source}`);
    const values = source.readSync(t);
    if (!(values instanceof Float32Array)) throw invalidArgument(`${what} is not a float tensor`);
    return loadShare(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), t.shape, 'f32', cut, target);
  };
  const { qkv, gateUp } = stackedRanges(config, layout);
  const qkvRows = (Hq + 2 * Hkv) * D;
  const qColumns = [{ start: layout.qHeads.start * D, count: layout.qHeads.count * D }];
  const layers = weights.layers.map(
    (w, l): LlamaLayerWeights => ({
      inputNorm: share(w.inputNorm, [H], `layer ${l}'s input norm`, {}),
      qkv: share(w.qkv, [qkvRows, H], `layer ${l}'s q/k/v`, { rows: qkv }),
      o: share(w.o, [H, Hq * D], `layer ${l}'s o_proj`, { columns: qColumns }),
      postNorm: share(w.postNorm, [H], `layer ${l}'s post-attention norm`, {}),
      gateUp: share(w.gateUp, [2 * I, H], `layer ${l}'s gate/up`, { rows: gateUp }),
      down: share(w.down, [H, I], `layer ${l}'s down_proj`, { columns: [layout.mlp] }),
      ...(w.qkvBias ? { qkvBias: share(w.qkvBias, [1, qkvRows], `layer ${l}'s q/k/v bias`, { columns: qkv }) } : {}),
    }),
  );
  return {
    embedTokens: share(weights.embedTokens, [V, H], 'the embedding', { rows: [layout.vocab], zeroRow: true }),
    layers,
    norm: share(weights.norm, [H], 'the final norm', {}),
    lmHead: share(weights.lmHead, [V, H], 'the LM head', { rows: [layout.vocab] }),
    tiedLmHead: false,
    totalBytes: weights.totalBytes,
    shard: { rank, size, vocabStart: layout.vocab.start, vocabCount: layout.vocab.count },
  };
}
