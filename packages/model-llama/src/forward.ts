import type { Backend, CacheOptions, Collective, Communicator, DecodeStep, GraphedStep, KvCache, KvDtype, RankProgram, RopeTable, Tensor } from '@arkvale/core';
import { ArkvaleError, invalidArgument, runGraphedStep, runRank } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { ropeSpec } from './config.js';
import { disposeLlamaWeights, type LlamaWeights } from './weights.js';
import type { ModelCache } from './model-cache.js';

/** A sequence already admitted to the cache, with its prompt tokens. */
export interface PrefillRequest {
  readonly id: number;
  readonly tokens: readonly number[];
}

/** Consecutive rows of a `forwardRows` pass whose attention one callback computes (a decode step of one cache, a prefill chunk). */
export interface RowSegment {
  readonly tokens: readonly number[];
  readonly positions: readonly number[];
  /**
   * Attention of this segment's rows at one layer: q [rows, numHeads, D], k and v [rows,
   * numKvHeads, D] (keys rotated). Under tensor parallelism (`TensorParallelLlama`), the
   * heads are `rank`'s share, and so must be the cache it attends through
   * (`ModelCache`'s layer methods take the rank); 0 otherwise.
   */
  attend(layer: number, q: Tensor, k: Tensor, v: Tensor, rank?: number): Tensor;
  /** What `attend` attends through, for ranks held by workers, which rebuild it (`RankedKvCache.attendRef`). */
  readonly ref?: AttendRef;
}

/**
 * A segment's attention as a worker holding other ranks names it: a prompt prefilled
 * whole (its sequence), or the prefill chunk or decode step that a cache's `begin` call
 * made (its handle), all of cache number `cache`.
 */
export type AttendRef =
  | { readonly cache: number; readonly kind: 'prefill'; readonly seq: number }
  | { readonly cache: number; readonly kind: 'chunk' | 'decode'; readonly handle: number };

/** How a cache lays out its pages: tokens per page, and fp8 or the backend's dtype (kvGeometry). */
export interface PageFormat {
  readonly pageSize: number;
  readonly kvDtype?: KvDtype;
}

/**
 * What runs a model's passes for a scheduler: one `LlamaForward`, or the ranks of a
 * `TensorParallelLlama` as one. `backend` is where the logits come back (rank 0's); only a
 * forward with `stepInputs` has steps that may be replayed as graphs (one backend's).
 */
export type ModelForward = Pick<
  LlamaForward,
  'config' | 'backend' | 'scale' | 'maxPositions' | 'mlpChunkRows' | 'paddingRows' | 'reservePadding' | 'checkLength' | 'forwardRows' | 'dispose'
> &
  Partial<Pick<LlamaForward, 'stepInputs' | 'freeInputs'>> & {
    /** The whole model's config as its ranks store KV pages, where that differs from `config` (TensorParallelLlama.storedConfig). */
    readonly storedConfig?: LlamaConfig;
    /**
     * A cache of one plan for this forward's ranks, with pools as `options` gives them,
     * on the stores of `first` (an earlier plan's cache of this forward) when given.
     * Absent: a `KvCache` on `backend` serves (one rank).
     */
    createPlanCache?(page: PageFormat, options: CacheOptions, prefixCache: boolean, first?: ModelCache): ModelCache;
  };

export interface RowBatch {
  readonly segments: readonly RowSegment[];
  /**
   * Row counts of the matrix-product blocks, in order, summing to all rows (default:
   * one block). A backend may pick its matmul kernel by row count, so a row's result
   * can depend on what else shares its product; giving each row the block it would
   * have alone makes the result independent of the batch (batch invariance).
   */
  readonly blocks?: readonly number[];
  /** Rows whose logits are returned, in this order. */
  readonly logitRows: readonly number[];
  /** Logit rows per lm_head product (default: all together). */
  readonly logitBlock?: number;
  /**
   * Rows each block's products are run with (default: its own rows): a block of fewer
   * rows is padded with zero rows to this many, and the padding's results dropped, so
   * that a backend that picks its kernel by shape runs every block at one shape. At most
   * the rows `reservePadding` reserved. `logitPad` does the same for the lm_head blocks.
   */
  readonly padTo?: readonly number[];
  readonly logitPad?: number;
  /**
   * The rows' positions and token ids already on the backend (`LlamaForward.stepInputs`),
   * made before the pass by a step that may be replayed without it; the pass frees them.
   */
  readonly inputs?: StepInputs;
}

/** A pass's positions and token ids (for a tensor-parallel rank: indices into its vocabulary's rows), i32 [rows]. */
export interface StepInputs {
  readonly positions: Tensor;
  readonly tokenIds: Tensor;
}

/**
 * Rows whose MLP runs at once. A pass over more rows (a long prefill) runs its MLP in
 * chunks, so the three [rows, intermediate] products of a 30k-token prompt (2 GB at the
 * 7B shape in f16, 8 GB for a batch of four) never exist at once; attention still sees
 * every row of its segment.
 */
export const MLP_CHUNK_ROWS = 4096;

/**
 * The MLP chunks of a pass, each as the matmul blocks it holds: a block larger than
 * `limit` is cut into pieces of `limit` rows from its start, smaller blocks are packed
 * whole into chunks of at most `limit` rows. A block's products therefore depend only
 * on the block itself (batch invariance holds chunked too).
 */
export function mlpChunks(blocks: readonly number[], limit: number): number[][] {
  const chunks: number[][] = [];
  let packed: number[] = [];
  let rows = 0;
  const flush = () => {
    if (packed.length) chunks.push(packed);
    packed = [];
    rows = 0;
  };
  for (const size of blocks) {
    if (size > limit) {
      flush();
      for (let start = 0; start < size; start += limit) chunks.push([Math.min(limit, size - start)]);
      continue;
    }
    if (rows + size > limit) flush();
    packed.push(size);
    rows += size;
  }
  flush();
  return chunks;
}

/**
 * The LLaMA forward pass, written once against `Backend`: every KV access goes through
 * the `KvCache`, so any policy (and any backend) runs the same model code.
 *
 * A tensor-parallel rank (docs/DESIGN.md) is the same class over a rank's shard of the
 * weights (`weights.shard`, tensor-parallel.ts) and the rank's config (its share of
 * the heads and MLP columns): its pass asks for an all-reduce after the embedding,
 * after each layer's o_proj and after its down_proj, and an all-gather of the logits.
 * `forwardRows` answers them with `communicator` (one rank per thread or process);
 * `forwardRowsProgram` gives the pass as a program, for runtimes that hold every rank
 * in one thread (`TensorParallelLlama`). Without a shard the pass asks for nothing.
 */
export class LlamaForward {
  readonly scale: number;
  private readonly rope: RopeTable;
  /** Zero rows per product width, kept for padded products (reservePadding). */
  private readonly zeros = new Map<number, Tensor>();
  private paddedRows = 0;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly backend: Backend,
    readonly maxPositions = config.maxPositionEmbeddings,
    readonly mlpChunkRows = MLP_CHUNK_ROWS,
    /** A tensor-parallel rank's collectives, answered as its pass asks for them (needed by `forwardRows` on a shard). */
    readonly communicator?: Communicator,
  ) {
    const shard = weights.shard;
    if (communicator && shard && (communicator.rank !== shard.rank || communicator.size !== shard.size)) {
      throw invalidArgument(`weights of rank ${shard.rank} of ${shard.size} given a communicator of rank ${communicator.rank} of ${communicator.size}`);
    }
    this.scale = 1 / Math.sqrt(config.headDim);
    this.rope = backend.createRopeTable(ropeSpec(config, maxPositions));
  }

  /**
   * Keeps zero rows for products padded to up to `rows` rows (RowBatch.padTo), made
   * once here rather than inside a step: a step replayed as a graph must not allocate
   * memory that outlives it.
   */
  reservePadding(rows: number): void {
    if (rows <= this.paddedRows) return;
    const c = this.config;
    const b = this.backend;
    // A backend that pads rows itself needs no zero rows.
    if (b.padRows) {
      this.paddedRows = rows;
      return;
    }
    const bytes = b.dtype === 'f32' ? 4 : 2;
    for (const t of this.zeros.values()) b.dispose(t);
    this.zeros.clear();
    for (const width of new Set([c.hiddenSize, c.numHeads * c.headDim, c.intermediateSize])) {
      this.zeros.set(width, b.keep(b.fromBytes(new Uint8Array(rows * width * bytes), [rows, width], b.dtype)));
    }
    this.paddedRows = rows;
  }

  /**
   * The rows `reservePadding` reserved. It only grows, and the zero rows are made again
   * each time it does: a graphed step's key names it, since the step reads them at their address.
   */
  get paddingRows(): number {
    return this.paddedRows;
  }

  /**
   * Returns the weights and the padding rows to the backend (device memory on a GPU is
   * not garbage collected, and a process may load another model after this one). The
   * forward pass is unusable afterwards.
   */
  dispose(): void {
    disposeLlamaWeights(this.weights, this.backend);
    for (const t of this.zeros.values()) this.backend.dispose(t);
    this.zeros.clear();
    this.paddedRows = 0;
  }

  /** Throws PROMPT_TOO_LONG unless `tokens` positions fit the model. */
  checkLength(tokens: number, what = `${tokens} tokens`): void {
    if (tokens > this.maxPositions) {
      throw new ArkvaleError(
        'PROMPT_TOO_LONG',
        `${what} exceed the model's limit of ${this.maxPositions} positions (max_position_embeddings in ${this.config.source})`,
      );
    }
  }

  /**
   * Runs the prompts of admitted sequences (of any lengths) through every layer in one
   * batch of rows and returns the logits of each prompt's last token, [N, vocab] f32.
   */
  prefill(cache: KvCache, requests: readonly PrefillRequest[]): Tensor {
    const segments = requests.map(
      (r): RowSegment => ({
        tokens: r.tokens,
        positions: r.tokens.map((_, i) => i),
        attend: (layer, q, k, v) => cache.prefillLayer(r.id, layer, q, k, v, this.scale),
      }),
    );
    const logitRows: number[] = [];
    let row = 0;
    for (const r of requests) logitRows.push((row += r.tokens.length) - 1);
    return this.forwardRows({ segments, logitRows });
  }

  /** One decoding step: `tokens[i]` is the newest token of sequence `ids[i]`; returns logits [B, vocab] f32. */
  decode(cache: KvCache, ids: readonly number[], tokens: readonly number[]): Tensor {
    const logitRows = tokens.map((_, i) => i);
    const step: GraphedStep<{ step: DecodeStep; inputs: StepInputs }> = {
      prelude: () => {
        const step = cache.beginStep(ids);
        return { step, inputs: this.stepInputs(tokens, step.positions) };
      },
      body: ({ step, inputs }) => {
        const attend = (layer: number, q: Tensor, k: Tensor, v: Tensor) => cache.decodeLayer(step, layer, q, k, v, this.scale);
        return this.forwardRows({ segments: [{ tokens, positions: step.positions, attend }], logitRows, inputs });
      },
    };
    // A backend that replays steps as graphs gets the ones that repeat the previous step's work.
    const key = this.backend.graphStep ? cache.graphKey(ids) : null;
    if (key === null) return runGraphedStep(this.backend, step);
    // Replayed without the forward pass where it would change nothing on the host that skipStep does not redo.
    const skipped = cache.canSkipForward(ids)
      ? ({ step, inputs }: { step: DecodeStep; inputs: StepInputs }) => {
          cache.skipStep(step);
          this.freeInputs(inputs);
        }
      : undefined;
    return this.backend.graphStep!(key, { ...step, skipped });
  }

  /**
   * A pass's positions and token ids on the backend (RowBatch.inputs), in row order: what
   * changes from one decode step to the next besides the cache's own uploads. With
   * `fed`, an i32 [rows] tensor on the backend, the token ids are a view of it (the
   * pass frees the view, not `fed`), and `tokens` only count the rows.
   */
  stepInputs(tokens: readonly number[], positions: readonly number[], fed?: Tensor): StepInputs {
    const b = this.backend;
    const n = tokens.length;
    const shard = this.weights.shard;
    if (fed) {
      // The previous step's tokens, left on the device (EngineConfig.overlapSteps): read where they are, so a replayed graph reads them too.
      if (shard !== undefined) throw invalidArgument("a sharded rank's token ids are made on the host: it cannot feed tokens from the device");
      if (fed.shape.length !== 1 || fed.shape[0] !== n || fed.dtype !== 'i32') throw invalidArgument(`fed tokens for ${n} rows must be i32 [${n}]`);
      return { positions: b.fromArray(positions, [n], 'i32'), tokenIds: b.reshape(fed, [n]) };
    }
    // A rank holds the embedding rows of its vocabulary and a zero row after them, which the other ranks' tokens read.
    const ids =
      shard === undefined
        ? tokens
        : tokens.map((t) => (t >= shard.vocabStart && t < shard.vocabStart + shard.vocabCount ? t - shard.vocabStart : shard.vocabCount));
    return { positions: b.fromArray(positions, [n], 'i32'), tokenIds: b.fromArray(ids, [n], 'i32') };
  }

  /** Frees a pass's inputs (a step replayed without its pass). */
  freeInputs(inputs: StepInputs): void {
    this.backend.dispose(inputs.positions);
    this.backend.dispose(inputs.tokenIds);
  }

  /**
   * One pass over rows of several segments at once (decode steps of different caches,
   * prefill chunks), each with its own attention, matrix products in `blocks`.
   * Returns logits [logitRows.length, vocab].
   */
  forwardRows(batch: RowBatch): Tensor {
    // Every temporary is freed when the pass ends, most when their layer does (device memory is not garbage collected).
    return this.backend.tidy(() => runRank(this.forwardRowsProgram(batch), this.communicator));
  }

  /**
   * `forwardRows` as a program that stops at each collective of a tensor-parallel rank
   * (none without a shard). Run it inside a `tidy` of its backend: the tensors outside
   * the layers live until that scope ends.
   */
  *forwardRowsProgram(batch: RowBatch): RankProgram<Tensor> {
    const b = this.backend;
    const c = this.config;
    const tokens = batch.segments.flatMap((s) => s.tokens);
    const positions = batch.segments.flatMap((s) => s.positions);
    const n = tokens.length;
    batch.segments.forEach((s) => {
      if (s.tokens.length !== s.positions.length || s.tokens.length === 0)
        throw invalidArgument('a row segment needs one position per token and at least one token');
    });
    positions.forEach((p) => this.checkLength(p + 1));
    const sum = (xs: readonly number[]) => xs.reduce((a, r) => a + r, 0);
    const blocks = batch.blocks ?? [n];
    if (sum(blocks) !== n || blocks.some((r) => !Number.isInteger(r) || r < 1)) {
      throw invalidArgument(`matmul blocks [${blocks.join(', ')}] do not partition ${n} rows`);
    }
    const split = (t: Tensor, sizes: readonly number[]): Tensor[] => {
      if (sizes.length === 1) return [t];
      let start = 0;
      return sizes.map((rows) => b.sliceRows(t, (start += rows) - rows, rows));
    };
    const join = (parts: Tensor[]): Tensor => (parts.length === 1 ? parts[0] : b.concatRows(parts));
    const pads = batch.padTo ?? blocks;
    if (pads.length !== blocks.length || pads.some((p, i) => !Number.isInteger(p) || p < blocks[i] || (p > blocks[i] && p > this.paddedRows))) {
      throw invalidArgument(`padded rows [${pads.join(', ')}] do not fit blocks [${blocks.join(', ')}] (reserved padding: ${this.paddedRows} rows)`);
    }
    const product = (x: Tensor, w: Tensor, rows: number, pad: number, outDtype?: 'f32'): Tensor => {
      if (pad === rows) return b.matmul(x, w, outDtype);
      if (b.padRows) return b.sliceRows(b.matmul(b.padRows(x, pad), w, outDtype), 0, rows);
      const width = x.shape[1];
      const zeros = this.zeros.get(width);
      if (!zeros) throw invalidArgument(`no padding reserved for products of width ${width}`);
      return b.sliceRows(b.matmul(b.concatRows([x, b.sliceRows(zeros, 0, pad - rows)]), w, outDtype), 0, rows);
    };
    const mm = (x: Tensor, w: Tensor, sizes = blocks, padSizes = pads, outDtype?: 'f32'): Tensor =>
      join(split(x, sizes).map((part, i) => product(part, w, sizes[i], padSizes[i], outDtype)));
    const sizes = batch.segments.map((s) => s.tokens.length);
    // One chunk holding every block when the pass has at most mlpChunkRows rows.
    const chunks = mlpChunks(blocks, this.mlpChunkRows);
    // Each MLP chunk's padded rows: its blocks' own, or none for a piece of a block cut to the chunk limit.
    const chunkPads: number[][] = [];
    for (let i = 0, cutLeft = 0; chunkPads.length < chunks.length; ) {
      const chunk = chunks[chunkPads.length];
      if (cutLeft > 0 || blocks[i] > this.mlpChunkRows) {
        if (cutLeft === 0) cutLeft = blocks[i];
        chunkPads.push([chunk[0]]);
        cutLeft -= chunk[0];
        if (cutLeft === 0) i++;
      } else {
        chunkPads.push(pads.slice(i, i + chunk.length));
        i += chunk.length;
      }
    }
    const shard = this.weights.shard;
    // A rank's share of a sum (or its vocabulary's logits) in, the whole out; the share is freed.
    const collective = function* (op: Collective['op'], t: Tensor): RankProgram<Tensor> {
      const whole = yield { op, t };
      b.dispose(t);
      return whole;
    };
    const inputs = batch.inputs ?? this.stepInputs(tokens, positions);
    if (inputs.positions.shape[0] !== n || inputs.tokenIds.shape[0] !== n)
      throw invalidArgument(`step inputs for ${inputs.positions.shape[0]} rows, the pass has ${n}`);
    const pos = inputs.positions;
    const layers = this.weights.layers;
    const rows = batch.logitRows;
    const all = rows.length === n && rows.every((r, i) => r === i);
    // Each residual add is fused with the norm after it (the next layer's input norm, or
    // the final norm when every row's logits are wanted): h is x normalised.
    let x = b.gatherRows(this.weights.embedTokens, inputs.tokenIds);
    b.dispose(inputs.tokenIds);
    if (shard) x = yield* collective('allReduceSum', x);
    // Row 0 n times: a layer's q/k/v biases as a row per token (Qwen2), added to the product.
    const biasRows = layers.some((w) => w.qkvBias) ? b.fromArray(new Int32Array(n), [n], 'i32') : null;
    const withBias = (qkv: Tensor, bias: Tensor | undefined) => (bias && biasRows ? b.add(qkv, b.gatherRows(bias, biasRows)) : qkv);
    let h: Tensor | undefined = b.rmsNorm(x, layers[0].inputNorm, c.rmsNormEps);
    for (let l = 0; l < layers.length; l++) {
      const w = layers[l];
      // Attention through o_proj (on a rank: its heads' share of the output).
      let attn = b.tidy(() => {
        const [q, k, v] = b.ropeQkv(withBias(mm(h!, w.qkv), w.qkvBias), pos, this.rope, c.numHeads, c.numKvHeads);
        const qs = split(q, sizes),
          ks = split(k, sizes),
          vs = split(v, sizes);
        const heads = join(batch.segments.map((s, i) => s.attend(l, qs[i], ks[i], vs[i])));
        return mm(b.reshape(heads, [n, c.numHeads * c.headDim]), w.o);
      });
      if (shard) attn = yield* collective('allReduceSum', attn);
      const [y, h2] = b.addRmsNorm(x, attn, w.postNorm, c.rmsNormEps);
      b.dispose(attn);
      b.dispose(x);
      if (h) b.dispose(h);
      const mlp = (part: Tensor, partBlocks: readonly number[], partPads: readonly number[]): Tensor =>
        mm(b.siluGatePacked(mm(part, w.gateUp, partBlocks, partPads)), w.down, partBlocks, partPads);
      // The MLP through down_proj (on a rank: its columns' share); each chunk's products are freed before the next chunk's exist.
      let out = b.tidy(() => join(split(h2, chunks.map(sum)).map((part, i) => b.tidy(() => mlp(part, chunks[i], chunkPads[i])))));
      if (shard) out = yield* collective('allReduceSum', out);
      const norm = l + 1 < layers.length ? layers[l + 1].inputNorm : all ? this.weights.norm : undefined;
      [x, h] = norm ? b.addRmsNorm(y, out, norm, c.rmsNormEps) : [b.add(y, out), undefined];
      b.dispose(out);
      b.dispose(y);
      b.dispose(h2);
    }
    b.dispose(pos);
    if (rows.length === 0) return b.fromArray([], [0, c.vocabSize]);
    const picked = h ?? b.rmsNorm(b.gatherRows(x, b.fromArray(rows, [rows.length], 'i32')), this.weights.norm, c.rmsNormEps);
    const per = batch.logitBlock ?? rows.length;
    const logitSizes = Array.from({ length: Math.ceil(rows.length / per) }, (_, i) => Math.min(per, rows.length - i * per));
    const logitPads = logitSizes.map((n) => Math.max(n, batch.logitPad ?? n));
    // Logits in f32 whatever the backend computes in: sampling and greedy ties need the precision.
    const logits = mm(picked, this.weights.lmHead, logitSizes, logitPads, 'f32');
    // On a rank: its vocabulary's columns, side by side with the other ranks'.
    return shard ? yield* collective('allGather', logits) : logits;
  }
}
