import { invalidArgument, resolveCacheOptions, type KvStats } from '@arkvale/core';
import type { CachePlan, LlamaEngine, ModelCache, ModelForward, Tokenizer } from '@arkvale/model-llama';
import { resolveEngineConfig } from './config.js';
import { EngineCore, type EventSink, type StepReport } from './engine-core.js';
import type { EngineError } from './errors.js';
import { checkSampling, type SamplingOptions } from './sampling-options.js';
import { batchDevicePages } from './step-bound.js';
import { checkTokenIds } from './token-ids.js';
import type { StopReason } from './types.js';

/*
 * The offline face of the engine: a batch of requests run to the end on one fresh
 * cache, by the same EngineCore that serves requests (continuous batching, one
 * sampler, stop strings and end of sequence). What differs is configuration: prompts
 * are prefilled one-shot, all in the first step, and every row of a step shares one
 * matrix product, as a fixed-batch benchmark or an evaluation wants.
 */

export interface GenerationRequest extends SamplingOptions {
  /** Prompt token ids, BOS included. */
  readonly promptIds: readonly number[];
  /**
   * Tokens fed after the prompt one decode step at a time (teacher-forced) before
   * anything is sampled: the cache decides what stays resident at the end of the
   * prompt, then sees these tokens as it would see generated ones. The passkey
   * protocol feeds its question this way so that a budgeted policy must recall the
   * needle instead of being told where it is at prefill. Default none.
   */
  readonly suffixIds?: readonly number[];
  /** Tokens to generate at most (fewer where the model runs out of positions). Default 64. */
  readonly maxTokens?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  readonly stop?: readonly string[];
  /** Keep going past end-of-sequence tokens. */
  readonly ignoreEos?: boolean;
  /** Streams text as it is produced (never text that a stop string later cuts). */
  readonly onText?: (delta: string) => void;
}

export interface GenerationOutput {
  readonly text: string;
  readonly tokenIds: number[];
  readonly promptTokens: number;
  readonly finishReason: StopReason;
}

export interface GenerationTimings {
  /** Steps that prefilled prompts (and sampled from their last rows). */
  readonly prefillMs: number;
  /** Decode steps that fed suffix tokens (before the first sampled token). */
  readonly suffixMs: number;
  /** The decode steps after the suffix. */
  readonly decodeMs: number;
  readonly promptTokens: number;
  readonly suffixTokens: number;
  readonly generatedTokens: number;
  /** Batched decode steps, suffix steps included. */
  readonly decodeSteps: number;
  /** Decode steps summed over the sequences each step ran (one sequence-step per token fed). */
  readonly sequenceSteps: number;
  /** Decode steps that took their tokens from the step before on the device (StepReport.overlapped). */
  readonly overlappedSteps: number;
}

export interface BatchResult {
  readonly outputs: GenerationOutput[];
  readonly timings: GenerationTimings;
  /** KV statistics when the last sequence finished (before its pages were freed). */
  readonly kv: KvStats;
}

/** Prompt rows of an offline batch's prefill pass by default (BatchOptions.stepTokens): 64 prompts of 1k tokens. */
export const BATCH_PASS_ROWS = 65_536;

export interface BatchOptions {
  /** Decode rows per matrix product (EngineConfig.decodeBlockRows). Default 0: one product for every row of a step. */
  readonly decodeBlockRows?: number;
  /**
   * Prompt rows a step prefills at most (at least one whole prompt). Default:
   * BATCH_PASS_ROWS, or the longest prompt where longer: four 128k prompts in one pass
   * would make activations of 2^31 elements at the Llama-3-8B shape, past what a
   * kernel's 32-bit sizes hold (and 4 GiB each).
   */
  readonly stepTokens?: number;
  /** Decode steps one ahead of their tokens' delivery (EngineConfig.overlapSteps). Default: the backend's. */
  readonly overlapSteps?: boolean;
}

/** What a batch run needs of a model: its forward pass, and its tokenizer unless it has token ids only. */
export interface BatchModel {
  /** One forward pass, or the ranks of a tensor-parallel one (`LlamaEngine.loadTensorParallel`). */
  readonly forward: ModelForward;
  /** null: token ids only (random weights at a model shape): outputs have no text, and stop strings are refused. */
  readonly tokenizer: Tokenizer | null;
  readonly eosIds: readonly number[];
}

/** Prompt and suffix: the tokens the cache holds before the first sampled one. */
const contextLength = (r: GenerationRequest): number => r.promptIds.length + (r.suffixIds?.length ?? 0);

/** Rejects a request before anything is admitted, naming what is wrong. */
export function checkGenerationRequest(forward: ModelForward, r: GenerationRequest): void {
  checkSampling(r);
  if (r.promptIds.length === 0) throw invalidArgument('a prompt needs at least one token');
  const max = r.maxTokens ?? 64;
  if (!Number.isInteger(max) || max < 1) throw invalidArgument(`max tokens must be an integer >= 1, got ${String(r.maxTokens)}`);
  checkTokenIds([...r.promptIds, ...(r.suffixIds ?? [])], forward.config.vocabSize);
  // The prompt, the suffix and the first generated token must fit; generation then stops at the limit.
  const suffix = r.suffixIds?.length ? ` and a suffix of ${r.suffixIds.length}` : '';
  forward.checkLength(contextLength(r) + 1, `a prompt of ${r.promptIds.length} tokens${suffix} and its first new token`);
}

/** The request's max tokens, capped where the model runs out of positions. */
const maxNewTokens = (forward: ModelForward, r: GenerationRequest): number => Math.min(r.maxTokens ?? 64, forward.maxPositions - contextLength(r));

/**
 * Generates for the requests on a fresh cache of this plan, sized for the batch (on a
 * GPU it must fit within the model's memory share), and frees every page at the end,
 * on error too. Each request samples from its own seed, whatever else is in the batch.
 */
export function generateBatch(
  model: LlamaEngine<ModelForward>,
  requests: readonly GenerationRequest[],
  plan: CachePlan,
  options: BatchOptions = {},
): BatchResult {
  if (requests.length === 0) throw invalidArgument('nothing to generate: no requests');
  for (const r of requests) checkGenerationRequest(model.forward, r);
  const longest = Math.max(...requests.map((r) => contextLength(r) + maxNewTokens(model.forward, r)));
  const cache = model.createCache(
    { ...plan, devicePages: plan.devicePages ?? batchPoolPages(model, plan, longest, requests.length) },
    longest,
    requests.length,
  );
  try {
    const run = new BatchRun({ forward: model.forward, tokenizer: model.model.tokenizer, eosIds: model.model.eosIds }, cache, requests, options);
    const ms = { prefill: 0, suffix: 0, decode: 0 };
    try {
      while (!run.done) {
        const start = performance.now();
        const step = run.step();
        ms[step.prefillTokens > 0 ? 'prefill' : step.suffixRows > 0 ? 'suffix' : 'decode'] += performance.now() - start;
      }
    } finally {
      run.close();
    }
    return run.result(ms);
  } finally {
    cache.close();
  }
}

/** The device pool of a batch on this model and plan (batchDevicePages). */
function batchPoolPages(model: LlamaEngine<ModelForward>, plan: CachePlan, tokens: number, sequences: number): number {
  const geometry = model.geometry(plan.pageSize, plan.kvDtype);
  return batchDevicePages(geometry, resolveCacheOptions(geometry, { ...plan, devicePages: 1 }), tokens, sequences);
}

/**
 * A batch of requests on a cache the caller made, one engine step at a time: what
 * generateBatch runs to the end, and what a benchmark drives to time each step. The
 * first step prefills every prompt one-shot (or as many as `stepTokens` allows), the
 * next ones decode every running sequence. `close()` ends what is still running and
 * frees its pages.
 */
export class BatchRun {
  private readonly core: EngineCore;
  private readonly outputs: (GenerationOutput | null)[];
  private readonly tokens: number[][];
  /** The text is what the events released, in order: a stop string's cut is never released. */
  private readonly texts: string[];
  private failure: EngineError | null = null;
  private kv: KvStats | null = null;
  private decodeSteps = 0;
  private sequenceSteps = 0;
  private overlappedSteps = 0;

  constructor(
    model: BatchModel,
    private readonly cache: ModelCache,
    private readonly requests: readonly GenerationRequest[],
    options: BatchOptions = {},
  ) {
    if (requests.length === 0) throw invalidArgument('nothing to generate: no requests');
    for (const r of requests) checkGenerationRequest(model.forward, r);
    if (!model.tokenizer && requests.some((r) => r.stop?.length)) throw invalidArgument('stop strings need a tokenizer: this model has token ids only');
    const n = requests.length;
    const o = cache.options;
    const config = resolveEngineConfig({
      pageSize: cache.pageSize,
      kvDtype: cache.geometry.kvDtype ?? 'auto',
      devicePages: o.devicePages,
      hostPages: o.hostPages,
      policy: o.policy,
      budgetTokens: o.budgetPages * cache.pageSize,
      prefill: 'one-shot',
      stepTokens: options.stepTokens ?? requests.reduce((rows, r) => Math.max(rows, r.promptIds.length), BATCH_PASS_ROWS),
      maxWaiting: n,
      maxRunning: n,
      decodeBlockRows: options.decodeBlockRows ?? 0,
      overlapSteps: options.overlapSteps,
      // An offline batch runs each prompt once, on the caller's cache.
      prefixCache: false,
    });
    this.outputs = requests.map(() => null);
    this.tokens = requests.map(() => []);
    this.texts = requests.map(() => '');
    this.core = new EngineCore({
      forward: model.forward,
      tokenizer: model.tokenizer,
      config,
      geometry: cache.geometry,
      eosIds: model.eosIds,
      cache,
      sink: (id, event) => this.onEvent(Number(id), event),
    });
    requests.forEach((r, i) =>
      this.core.enqueue({
        id: String(i),
        promptIds: [...r.promptIds],
        suffixIds: [...(r.suffixIds ?? [])],
        maxTokens: maxNewTokens(model.forward, r),
        temperature: r.temperature ?? 0,
        topK: r.topK ?? 0,
        topP: r.topP ?? 1,
        seed: r.seed ?? 0,
        stop: [...(r.stop ?? [])],
        ignoreEos: r.ignoreEos ?? false,
        cachePrefix: false,
        logprobs: null,
        promptLogprobs: null,
        sharePromptWith: null,
        constraint: null,
        policy: o.policy,
        budgetTokens: config.budgetTokens,
      }),
    );
  }

  private onEvent(i: number, event: Parameters<EventSink>[1]): void {
    if (event.type === 'error') {
      this.failure ??= event.error;
      return;
    }
    if (event.type === 'token') this.tokens[i].push(event.tokenId);
    if (event.text) {
      this.texts[i] += event.text;
      this.requests[i].onText?.(event.text);
    }
    if (event.type === 'done' && event.finishReason !== 'abort') {
      const { promptIds } = this.requests[i];
      this.outputs[i] = { text: this.texts[i], tokenIds: this.tokens[i], promptTokens: promptIds.length, finishReason: event.finishReason };
      // Statistics as the last sequence ends, while its pages are still held.
      if (this.outputs.every((o) => o !== null)) this.kv = this.cache.stats();
    }
  }

  /** The tokens each request has generated so far, in request order. */
  get tokenIds(): readonly (readonly number[])[] {
    return this.tokens;
  }

  /** Whether every request has finished (or one failed: `step` then throws its error). */
  get done(): boolean {
    return !this.core.hasWork;
  }

  /** Runs one engine step. Throws the step's own error (out of memory, a kernel's refusal), with its code. */
  step(): StepReport {
    const report = this.core.step();
    if (this.failure) throw this.failure.cause ?? this.failure;
    if (report.prefillTokens === 0 && report.decodeRows === 0) throw new Error('the batch cannot make progress: its pools are too small for its next step');
    if (report.decodeRows > 0) {
      this.decodeSteps++;
      this.sequenceSteps += report.decodeRows;
      if (report.overlapped) this.overlappedSteps++;
    }
    return report;
  }

  /** Ends whatever is still running and frees its pages (the cache stays the caller's). */
  close(): void {
    this.core.close();
  }

  /** The outputs once done, with the phase times the caller measured. */
  result(ms: { prefill: number; suffix: number; decode: number }): BatchResult {
    if (this.outputs.some((o) => o === null)) throw new Error('the batch has not finished');
    const sum = (f: (r: GenerationRequest) => number) => this.requests.reduce((s, r) => s + f(r), 0);
    return {
      outputs: this.outputs.map((o) => o!),
      timings: {
        prefillMs: ms.prefill,
        suffixMs: ms.suffix,
        decodeMs: ms.decode,
        promptTokens: sum((r) => r.promptIds.length),
        suffixTokens: sum((r) => r.suffixIds?.length ?? 0),
        generatedTokens: this.tokens.reduce((s, t) => s + t.length, 0),
        decodeSteps: this.decodeSteps,
        sequenceSteps: this.sequenceSteps,
        overlappedSteps: this.overlappedSteps,
      },
      kv: this.kv ?? this.cache.stats(),
    };
  }
}
