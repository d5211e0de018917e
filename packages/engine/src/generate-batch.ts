import { invalidArgument, poolPagesFor, resolveCacheOptions, type KvStats } from '@arkvale/core';
import type { CachePlan, LlamaEngine } from '@arkvale/model-llama';
import { resolveEngineConfig } from './config.js';
import { EngineCore, type StepReport } from './engine-core.js';
import type { EngineError } from './errors.js';
import type { PreparedRequest } from './prepare.js';
import { checkSampling, type SamplingOptions } from './sampling-options.js';
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
}

export interface BatchResult {
  readonly outputs: GenerationOutput[];
  readonly timings: GenerationTimings;
  /** KV statistics when the last sequence finished (before its pages were freed). */
  readonly kv: KvStats;
}

export interface BatchOptions {
  /** Decode rows per matrix product (EngineConfig.decodeBlockRows). Default 0: one product for every row of a step. */
  readonly decodeBlockRows?: number;
}

/** Prompt and suffix: the tokens the cache holds before the first sampled one. */
const contextLength = (r: GenerationRequest): number => r.promptIds.length + (r.suffixIds?.length ?? 0);

/** Rejects a request before anything is admitted, naming what is wrong. */
export function checkGenerationRequest(model: LlamaEngine, r: GenerationRequest): void {
  checkSampling(r);
  if (r.promptIds.length === 0) throw invalidArgument('a prompt needs at least one token');
  const max = r.maxTokens ?? 64;
  if (!Number.isInteger(max) || max < 1) throw invalidArgument(`max tokens must be an integer >= 1, got ${String(r.maxTokens)}`);
  const vocab = model.model.config.vocabSize;
  const bad = [...r.promptIds, ...(r.suffixIds ?? [])].find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
  if (bad !== undefined) throw invalidArgument(`token id ${String(bad)} is outside the vocabulary (0..${vocab - 1})`);
  // The prompt, the suffix and the first generated token must fit; generation then stops at the limit.
  const suffix = r.suffixIds?.length ? ` and a suffix of ${r.suffixIds.length}` : '';
  model.forward.checkLength(contextLength(r) + 1, `a prompt of ${r.promptIds.length} tokens${suffix} and its first new token`);
}

/**
 * Generates for the requests on a fresh cache of this plan, sized for the batch (on a
 * GPU it must fit within the model's memory share), and frees every page at the end,
 * on error too. Each request samples from its own seed, whatever else is in the batch.
 */
export function generateBatch(model: LlamaEngine, requests: readonly GenerationRequest[], plan: CachePlan, options: BatchOptions = {}): BatchResult {
  if (requests.length === 0) throw invalidArgument('nothing to generate: no requests');
  for (const r of requests) checkGenerationRequest(model, r);
  const maxPositions = model.forward.maxPositions;
  const maxTokens = requests.map((r) => Math.min(r.maxTokens ?? 64, maxPositions - contextLength(r)));
  const longest = Math.max(...requests.map((r, i) => contextLength(r) + maxTokens[i]));
  const cache = model.createCache(
    { ...plan, devicePages: plan.devicePages ?? devicePagesFor(model, plan, longest, requests.length) },
    longest,
    requests.length,
  );
  try {
    return runToEnd(model, cache, requests, maxTokens, plan, options);
  } finally {
    cache.close();
  }
}

/** The pool a batch needs: what its sequences hold at most, and each one a decode step's new pages and recalls (the scheduler's admission margin). */
function devicePagesFor(model: LlamaEngine, plan: CachePlan, tokens: number, sequences: number): number {
  const geometry = model.geometry(plan.pageSize);
  const resolved = resolveCacheOptions(geometry, { ...plan, devicePages: 1 });
  const groups = resolved.selection === 'kv-head' ? geometry.numKvHeads : 1;
  const step = geometry.numLayers * (1 + resolved.topK * groups);
  return poolPagesFor(geometry, resolved, tokens, sequences).devicePages + step * sequences;
}

function runToEnd(
  model: LlamaEngine,
  cache: ReturnType<LlamaEngine['createCache']>,
  requests: readonly GenerationRequest[],
  maxTokens: readonly number[],
  plan: CachePlan,
  options: BatchOptions,
): BatchResult {
  const n = requests.length;
  const config = resolveEngineConfig({
    pageSize: plan.pageSize,
    devicePages: cache.options.devicePages,
    hostPages: cache.options.hostPages,
    policy: cache.options.policy,
    budgetTokens: plan.budgetTokens ?? cache.options.budgetPages * plan.pageSize,
    prefill: 'one-shot',
    stepTokens: Number.MAX_SAFE_INTEGER,
    maxWaiting: n,
    maxRunning: n,
    decodeBlockRows: options.decodeBlockRows ?? 0,
  });
  const outputs: (GenerationOutput | null)[] = requests.map(() => null);
  const tokens = requests.map(() => [] as number[]);
  // The text is what the events released, in order: a stop string's cut is never released.
  const texts = requests.map(() => '');
  let failure: EngineError | null = null;
  let kv: KvStats | null = null;
  const core = new EngineCore({
    forward: model.forward,
    tokenizer: model.model.tokenizer,
    config,
    geometry: cache.geometry,
    eosIds: model.model.eosIds,
    cache,
    sink: (id, event) => {
      const i = Number(id);
      if (event.type === 'error') {
        failure ??= event.error;
        return;
      }
      if (event.type === 'token') tokens[i].push(event.tokenId);
      if (event.text) {
        texts[i] += event.text;
        requests[i].onText?.(event.text);
      }
      if (event.type === 'done' && event.finishReason !== 'abort') {
        outputs[i] = { text: texts[i], tokenIds: tokens[i], promptTokens: requests[i].promptIds.length, finishReason: event.finishReason };
        // Statistics as the last sequence ends, while its pages are still held.
        if (outputs.every((o) => o !== null)) kv = cache.stats();
      }
    },
  });
  requests.forEach((r, i) => {
    const prepared: PreparedRequest = {
      id: String(i),
      promptIds: [...r.promptIds],
      suffixIds: [...(r.suffixIds ?? [])],
      maxTokens: maxTokens[i],
      temperature: r.temperature ?? 0,
      topK: r.topK ?? 0,
      topP: r.topP ?? 1,
      seed: r.seed ?? 0,
      stop: [...(r.stop ?? [])],
      ignoreEos: r.ignoreEos ?? false,
      policy: cache.options.policy,
      budgetTokens: config.budgetTokens,
    };
    core.enqueue(prepared);
  });
  const ms = { prefill: 0, suffix: 0, decode: 0 };
  let decodeSteps = 0;
  let sequenceSteps = 0;
  try {
    while (core.hasWork && !failure) {
      const start = performance.now();
      const step: StepReport = core.step();
      const phase = step.prefillTokens > 0 ? 'prefill' : step.suffixRows > 0 ? 'suffix' : 'decode';
      ms[phase] += performance.now() - start;
      if (step.decodeRows > 0) {
        decodeSteps++;
        sequenceSteps += step.decodeRows;
      }
      if (step.prefillTokens === 0 && step.decodeRows === 0) throw new Error('the batch cannot make progress: its pools are too small for its next step');
    }
  } finally {
    core.close();
  }
  // The step's own error (out of memory, a kernel's refusal) is the caller's to see, with its code.
  if (failure) throw (failure as EngineError).cause ?? failure;
  return {
    outputs: outputs.map((o) => o!),
    timings: {
      prefillMs: ms.prefill,
      suffixMs: ms.suffix,
      decodeMs: ms.decode,
      promptTokens: requests.reduce((s, r) => s + r.promptIds.length, 0),
      suffixTokens: requests.reduce((s, r) => s + (r.suffixIds?.length ?? 0), 0),
      generatedTokens: tokens.reduce((s, t) => s + t.length, 0),
      decodeSteps,
      sequenceSteps,
    },
    kv: kv ?? cache.stats(),
  };
}
