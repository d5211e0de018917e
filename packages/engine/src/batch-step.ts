import { internalError, runGraphedStep, type DecodeStep, type GraphedStep, type PoolNeeds, type Tensor } from '@arkvale/core';
import type { ModelCache, ModelForward, RowBatch, RowSegment } from '@arkvale/model-llama';
import type { Job } from './job.js';

/** A prefill chunk chosen for this step: `count` prompt tokens, or the whole prompt in one pass (`oneShot`). */
export interface ChunkPlan {
  readonly job: Job;
  readonly count: number;
  readonly oneShot: boolean;
  /** What it takes from the pools. */
  readonly needs: PoolNeeds;
}

export interface StepResult {
  /** Logits [rows, vocab]: one row per entry of `jobs`, then the rows of `promptRows`. */
  readonly logits: Tensor;
  /** Whose token each logit row is: every decoding job, then each job whose prompt just ended. */
  readonly jobs: Job[];
  /**
   * Prompt rows whose logits score the next prompt token (jobs with promptLogprobs), in
   * order after the jobs' rows: `count` rows of `job` from prompt position `first`.
   */
  readonly promptRows: { readonly job: Job; readonly first: number; readonly count: number }[];
}

/** Jobs grouped by cache, in first-seen order. */
function byCache(jobs: readonly Job[]): [ModelCache, Job[]][] {
  const groups = new Map<ModelCache, Job[]>();
  for (const j of jobs) {
    const list = groups.get(j.cache!) ?? [];
    list.push(j);
    groups.set(j.cache!, list);
  }
  return [...groups.entries()];
}

/**
 * How a step's rows go through the matrix products (EngineConfig.decodeBlockRows):
 * decode rows in blocks of `blockRows` and each chunk in a block of its own, so that
 * every row meets the kernels it would meet alone; with 0, every row of the step
 * shares one product. With `pad`, a decode block's products run at `blockRows` rows
 * and a chunk's at `chunkRows` (padded), for a backend that picks kernels by shape.
 */
export interface ProductBlocks {
  readonly blockRows: number;
  readonly pad: boolean;
  /** The rows a chunk's products are padded to (chunks of more rows, and one-shot prompts, are not padded). */
  readonly chunkRows: number;
}

/**
 * One forward pass for a decode step of every decoding job (one DecodeStep per
 * cache) and the chosen prefill chunks, its products in blocks (ProductBlocks).
 *
 * The pools were checked for the whole step by the caller: the chunks take their
 * pages first, then each cache's step, whose recalls stay within what it reserved.
 */
export function runStep(
  forward: ModelForward,
  decoding: readonly Job[],
  chunks: readonly ChunkPlan[],
  products: ProductBlocks,
  /** The decode rows' tokens on the device, in row order (TokenFeed.tokensFor: the held step's tokens of these jobs); absent: each job's `next`. */
  fed?: Tensor,
): StepResult {
  if (fed && (chunks.length > 0 || !forward.stepInputs)) throw internalError('tokens fed from the device need a decode-only step on one backend');
  const groups = byCache(decoding);
  const jobs: Job[] = [];
  const promptRows: StepResult['promptRows'] = [];
  const step: GraphedStep<PlannedStep> = {
    prelude: () => planStep(forward, groups, chunks, products, jobs, promptRows, fed),
    body: (planned) => forward.forwardRows(planned.batch),
  };
  // A step of decode rows alone may be replayed as a graph when its work repeats the last one's (a forward pass on
  // one backend: one with stepInputs).
  const key = chunks.length === 0 && forward.backend.graphStep && forward.stepInputs ? graphKey(forward, groups, products, fed !== undefined) : null;
  if (key === null) return { logits: runGraphedStep(forward.backend, step), jobs, promptRows };
  // Without its forward pass where that would change nothing on the host that skipStep does not redo.
  const skipped = groups.every(([cache, list]) => cache.canSkipForward(list.map((j) => j.seq)))
    ? (planned: PlannedStep) => {
        planned.steps.forEach(([cache, s]) => cache.skipStep(s));
        if (planned.batch.inputs) forward.freeInputs?.(planned.batch.inputs);
      }
    : undefined;
  return { logits: forward.backend.graphStep!(key, { ...step, skipped }), jobs, promptRows };
}

/** The key of a decode-only step: every cache's (KvCache.graphKey), the blocks and the padding; null when one cache's step cannot be replayed. */
function graphKey(forward: ModelForward, groups: readonly [ModelCache, Job[]][], products: ProductBlocks, fed: boolean): string | null {
  // Padded products read the forward pass's zero rows, made again when more are reserved;
  // tokens fed from the device are read where they are, those from the host uploaded.
  let key = `blocks ${products.blockRows}${products.pad ? ` padded from ${forward.paddingRows}` : ''}${fed ? ' fed' : ''}`;
  for (const [cache, list] of groups) {
    const k = cache.graphKey(list.map((j) => j.seq));
    if (k === null) return null;
    key += ` | ${list.length} ${k}`;
  }
  return key;
}

/** A prefill chunk's rows: a one-shot prompt (`KvCache.prefillLayer`) or the next chunk of a chunked one. */
function chunkSegment(forward: ModelForward, plan: ChunkPlan): { segment: RowSegment; last: boolean; start: number } {
  const { job } = plan;
  const cache = job.cache!;
  const prompt = job.req.promptIds;
  if (plan.oneShot) {
    return {
      segment: {
        tokens: prompt,
        positions: prompt.map((_, i) => i),
        attend: (l, q, k, v, rank) => cache.prefillLayer(job.seq, l, q, k, v, forward.scale, rank),
        ref: cache.attendRef?.({ seq: job.seq }),
      },
      last: true,
      start: 0,
    };
  }
  const chunk = cache.beginPrefillChunk(job.seq, plan.count);
  return {
    segment: {
      tokens: prompt.slice(chunk.start, chunk.start + chunk.count),
      positions: Array.from({ length: chunk.count }, (_, i) => chunk.start + i),
      attend: (l, q, k, v, rank) => cache.prefillChunkLayer(chunk, l, q, k, v, forward.scale, rank),
      ref: cache.attendRef?.({ chunk }),
    },
    last: chunk.last,
    start: chunk.start,
  };
}

/** A step's work before its forward pass: each cache's decode step begun, the prefill chunks' rows, and the pass's rows with their inputs on the backend. */
interface PlannedStep {
  readonly batch: RowBatch;
  readonly steps: readonly (readonly [ModelCache, DecodeStep])[];
}

/**
 * Everything of a step but its forward pass (GraphedStep's prelude): the chunks take
 * their pages, each cache's decode step begins, and the pass's rows, blocks and inputs
 * are laid out; fills `jobs` with whose token each logit row is.
 */
function planStep(
  forward: ModelForward,
  groups: readonly [ModelCache, Job[]][],
  chunks: readonly ChunkPlan[],
  products: ProductBlocks,
  jobs: Job[],
  promptRows: StepResult['promptRows'],
  fed?: Tensor,
): PlannedStep {
  const { blockRows, pad } = products;
  const segments: RowSegment[] = [];
  const steps: [ModelCache, DecodeStep][] = [];
  // Chunks take their pages before the decode steps begin (see runStep).
  const begun = chunks.map((c) => ({ job: c.job, plan: c, ...chunkSegment(forward, c) }));
  for (const [cache, list] of groups) {
    const step = cache.beginStep(list.map((j) => j.seq));
    steps.push([cache, step]);
    segments.push({
      tokens: list.map((j) => j.next),
      positions: step.positions,
      attend: (l, q, k, v, rank) => cache.decodeLayer(step, l, q, k, v, forward.scale, rank),
      ref: cache.attendRef?.({ step }),
    });
    jobs.push(...list);
  }
  const decodeRows = jobs.length;
  const blocks: number[] = [];
  const padTo: number[] = [];
  if (blockRows > 0) {
    for (let left = decodeRows; left > 0; left -= blockRows) {
      blocks.push(Math.min(left, blockRows));
      padTo.push(pad ? blockRows : Math.min(left, blockRows));
    }
  }
  const logitRows = Array.from({ length: decodeRows }, (_, i) => i);
  let row = decodeRows;
  const scoredRows: number[] = [];
  for (const { job, segment, last, plan, start } of begun) {
    segments.push(segment);
    const rows = segment.tokens.length;
    blocks.push(rows);
    padTo.push(pad && !plan.oneShot && rows < products.chunkRows ? products.chunkRows : rows);
    row += segment.tokens.length;
    if (last) {
      logitRows.push(row - 1);
      jobs.push(job);
    }
    // Each prompt row's logits score the prompt token after it (the last row's, its first generated token).
    const scored = last ? rows - 1 : rows;
    if (job.req.promptLogprobs !== null && scored > 0) {
      promptRows.push({ job, first: start, count: scored });
      for (let r = 0; r < scored; r++) scoredRows.push(row - rows + r);
    }
  }
  logitRows.push(...scoredRows);
  const inputs = forward.stepInputs?.(
    segments.flatMap((s) => s.tokens),
    segments.flatMap((s) => s.positions),
    fed,
  );
  const batch: RowBatch =
    blockRows === 0
      ? { segments, logitRows, inputs }
      : { segments, blocks, logitRows, logitBlock: blockRows, ...(pad ? { padTo, logitPad: blockRows } : {}), inputs };
  return { batch, steps };
}
