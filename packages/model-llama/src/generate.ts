import type { KvCache, KvStats, Tensor } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import type { LlamaForward } from './forward.js';
import type { SamplingOptions } from './sampling.js';
import { seededUniform } from '@arkvale/core';
import { checkSampling, sampleRows } from './sampling.js';
import { TextStream } from './text-stream.js';
import type { Tokenizer } from './tokenizer.js';

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
  /** Tokens to generate at most. Default 64. */
  readonly maxTokens?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  readonly stop?: readonly string[];
  /** Keep going past end-of-sequence tokens. */
  readonly ignoreEos?: boolean;
  /** Streams text as it is produced (never text that a stop string later cuts). */
  readonly onText?: (delta: string) => void;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerationOutput {
  readonly text: string;
  readonly tokenIds: number[];
  readonly promptTokens: number;
  readonly finishReason: FinishReason;
}

export interface GenerationTimings {
  readonly prefillMs: number;
  /** Time of the decode steps that fed suffix tokens (before the first sampled token). */
  readonly suffixMs: number;
  /** Time of the decode steps after the suffix. */
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

/** One sequence in flight: its suffix still to feed, its random stream, its text. */
class Run {
  readonly uniform: () => number;
  readonly stream: TextStream;
  /** Suffix tokens fed so far. */
  fed = 0;

  constructor(
    readonly id: number,
    readonly request: GenerationRequest,
    tokenizer: Tokenizer,
    index: number,
    maxTokens: number,
  ) {
    const context = [...request.promptIds, ...(request.suffixIds ?? [])];
    this.stream = new TextStream(tokenizer, context, request.stop ?? [], maxTokens, request.ignoreEos ?? false);
    this.uniform = seededUniform((request.seed ?? 0) + index);
  }

  get finish(): FinishReason | null {
    return this.stream.finish;
  }

  get tokenIds(): readonly number[] {
    return this.stream.tokenIds;
  }

  get hasSuffixLeft(): boolean {
    return this.fed < (this.request.suffixIds?.length ?? 0);
  }

  /** The next suffix token to feed, or null once the suffix is done. */
  nextSuffixToken(): number | null {
    return this.hasSuffixLeft ? this.request.suffixIds![this.fed++] : null;
  }

  accept(token: number, isEos: boolean): void {
    const delta = this.stream.accept(token, isEos);
    if (delta) this.request.onText?.(delta);
  }

  output(): GenerationOutput {
    return { text: this.stream.text, tokenIds: [...this.stream.tokenIds], promptTokens: this.request.promptIds.length, finishReason: this.finish ?? 'length' };
  }
}

/** Prompt and suffix: the tokens the cache holds before the first sampled one. */
export function contextLength(r: GenerationRequest): number {
  return r.promptIds.length + (r.suffixIds?.length ?? 0);
}

/** The request's max tokens, capped where the model runs out of positions. */
function maxNewTokens(model: LlamaForward, r: GenerationRequest): number {
  return Math.min(r.maxTokens ?? 64, model.maxPositions - contextLength(r));
}

/** Rejects a request before anything is admitted, naming what is wrong. */
export function checkGenerationRequest(model: LlamaForward, r: GenerationRequest): void {
  checkSampling(r);
  if (r.promptIds.length === 0) throw invalidArgument('a prompt needs at least one token');
  const max = r.maxTokens ?? 64;
  if (!Number.isInteger(max) || max < 1) throw invalidArgument(`max tokens must be an integer >= 1, got ${String(r.maxTokens)}`);
  const ids = [...r.promptIds, ...(r.suffixIds ?? [])];
  const vocab = model.config.vocabSize;
  const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
  if (bad !== undefined) throw invalidArgument(`token id ${String(bad)} is outside the vocabulary (0..${vocab - 1})`);
  // The prompt, the suffix and the first generated token must fit; generation then stops at the limit.
  const suffix = r.suffixIds?.length ? ` and a suffix of ${r.suffixIds.length}` : '';
  model.checkLength(contextLength(r) + 1, `a prompt of ${r.promptIds.length} tokens${suffix} and its first new token`);
}

/**
 * The token each active run feeds next: its next suffix token while it has one,
 * else a token sampled from its row of `logits` (then accepted, which may finish it).
 * Rows still feeding their suffix are not sampled, and take nothing from their
 * random stream, so a suffix does not change what a seed generates after it.
 */
function nextTokens(model: LlamaForward, logits: Tensor, active: readonly Run[], eos: ReadonlySet<number>): number[] {
  const next = active.map((r) => r.nextSuffixToken() ?? -1);
  const sampling = next.flatMap((t, i) => (t < 0 ? [i] : []));
  if (sampling.length === 0) return next;
  const b = model.backend;
  const sampled = b.tidy(() => {
    const rows = sampling.length === active.length ? logits : b.gatherRows(logits, b.fromArray(sampling, [sampling.length], 'i32'));
    return sampleRows(b, rows, sampling.map((i) => ({ options: active[i].request, uniform: active[i].uniform })));
  });
  sampling.forEach((i, j) => {
    next[i] = sampled[j];
    active[i].accept(sampled[j], eos.has(sampled[j]));
  });
  return next;
}

/**
 * Generates for several prompts of different lengths at once on one cache: one
 * batched prefill, then batched decode steps over the sequences still running, each
 * first feeding its suffix if it has one. Every sequence's pages are freed when it
 * finishes, and on any error.
 */
export function generateBatch(model: LlamaForward, tokenizer: Tokenizer, cache: KvCache, requests: readonly GenerationRequest[]): BatchResult {
  if (requests.length === 0) throw invalidArgument('nothing to generate: no requests');
  for (const r of requests) checkGenerationRequest(model, r);
  const eos = new Set([...tokenizer.eosIds, ...model.config.eosTokenIds]);
  const runs: Run[] = [];
  try {
    for (const [i, r] of requests.entries()) runs.push(new Run(cache.admit(r.promptIds.length), r, tokenizer, i, maxNewTokens(model, r)));
    const t0 = performance.now();
    let logits = model.prefill(cache, runs.map((r) => ({ id: r.id, tokens: r.request.promptIds })));
    const t1 = performance.now();
    let suffixMs = 0;
    let active = runs;
    let steps = 0;
    let sequenceSteps = 0;
    for (;;) {
      const stepStart = performance.now();
      // A step that feeds some row's suffix counts as suffix time.
      const feeding = active.some((r) => r.hasSuffixLeft);
      const next = nextTokens(model, logits, active, eos);
      model.backend.dispose(logits);
      const still = active.filter((r) => !r.finish);
      if (still.length === 0) break;
      const rows = active.flatMap((r, i) => (r.finish ? [] : [i]));
      // Finished sequences give their pages back at once; the others go on.
      for (const r of active) if (r.finish) cache.free(r.id);
      logits = model.decode(cache, still.map((r) => r.id), rows.map((i) => next[i]));
      if (feeding) suffixMs += performance.now() - stepStart;
      steps++;
      sequenceSteps += still.length;
      active = still;
    }
    const t2 = performance.now();
    const kv = cache.stats();
    return {
      outputs: runs.map((r) => r.output()),
      timings: {
        prefillMs: t1 - t0,
        suffixMs,
        decodeMs: t2 - t1 - suffixMs,
        promptTokens: requests.reduce((n, r) => n + r.promptIds.length, 0),
        suffixTokens: requests.reduce((n, r) => n + (r.suffixIds?.length ?? 0), 0),
        generatedTokens: runs.reduce((n, r) => n + r.tokenIds.length, 0),
        decodeSteps: steps,
        sequenceSteps,
      },
      kv,
    };
  } finally {
    for (const r of runs) if (cache.has(r.id)) cache.free(r.id);
  }
}
