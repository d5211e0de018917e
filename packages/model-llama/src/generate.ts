import type { KvCache, KvStats } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import type { LlamaForward } from './forward.js';
import type { SamplingOptions } from './sampling.js';
import { seededUniform } from '@arkvale/core';
import { checkSampling, sampleRows } from './sampling.js';
import type { StreamDecoder, Tokenizer } from './tokenizer.js';

export interface GenerationRequest extends SamplingOptions {
  /** Prompt token ids, BOS included. */
  readonly promptIds: readonly number[];
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
  readonly decodeMs: number;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  readonly decodeSteps: number;
}

export interface BatchResult {
  readonly outputs: GenerationOutput[];
  readonly timings: GenerationTimings;
  /** KV statistics when the last sequence finished (before its pages were freed). */
  readonly kv: KvStats;
}

/** One sequence in flight. */
class Run {
  readonly tokenIds: number[] = [];
  readonly decoder: StreamDecoder;
  readonly uniform: () => number;
  readonly holdBack: number;
  text = '';
  emitted = 0;
  finish: FinishReason | null = null;

  constructor(
    readonly id: number,
    readonly request: GenerationRequest,
    tokenizer: Tokenizer,
    index: number,
  ) {
    this.decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: true, prefixIds: request.promptIds });
    this.uniform = seededUniform((request.seed ?? 0) + index);
    // Text that could still become the start of a stop string is held back.
    this.holdBack = Math.max(0, ...(request.stop ?? []).map((s) => s.length - 1));
  }

  accept(token: number, isEos: boolean, maxTokens: number): void {
    const eos = isEos && !this.request.ignoreEos;
    if (!eos) {
      this.tokenIds.push(token);
      this.text += this.decoder.push(token);
    }
    const last = eos || this.tokenIds.length >= maxTokens;
    // Bytes of a character still incomplete are written out at the end.
    if (last) this.text += this.decoder.flush();
    const cut = this.stopIndex();
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.finish = 'stop';
    } else if (last) {
      this.finish = eos ? 'eos' : 'length';
    }
    const safe = this.finish ? this.text.length : Math.max(this.emitted, this.text.length - this.holdBack);
    if (safe > this.emitted) {
      this.request.onText?.(this.text.slice(this.emitted, safe));
      this.emitted = safe;
    }
  }

  private stopIndex(): number {
    let best = -1;
    for (const s of this.request.stop ?? []) {
      const i = s ? this.text.indexOf(s) : -1;
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }

  output(): GenerationOutput {
    return { text: this.text, tokenIds: this.tokenIds, promptTokens: this.request.promptIds.length, finishReason: this.finish ?? 'length' };
  }
}

/** The request's max tokens, capped where the model runs out of positions. */
function maxNewTokens(model: LlamaForward, r: GenerationRequest): number {
  return Math.min(r.maxTokens ?? 64, model.maxPositions - r.promptIds.length);
}

/**
 * Generates for several prompts of different lengths at once on one cache: one
 * batched prefill, then batched decode steps over the sequences still running. Every
 * sequence's pages are freed when it finishes, and on any error.
 */
export function generateBatch(model: LlamaForward, tokenizer: Tokenizer, cache: KvCache, requests: readonly GenerationRequest[]): BatchResult {
  if (requests.length === 0) throw invalidArgument('nothing to generate: no requests');
  for (const r of requests) {
    checkSampling(r);
    if (r.promptIds.length === 0) throw invalidArgument('a prompt needs at least one token');
    const max = r.maxTokens ?? 64;
    if (!Number.isInteger(max) || max < 1) throw invalidArgument(`max tokens must be an integer >= 1, got ${String(r.maxTokens)}`);
    // The prompt plus its first generated token must fit; generation then stops at the limit.
    model.checkLength(r.promptIds.length + 1, `a prompt of ${r.promptIds.length} tokens and its first new token`);
  }
  const eos = new Set([...tokenizer.eosIds, ...model.config.eosTokenIds]);
  const runs: Run[] = [];
  try {
    for (const [i, r] of requests.entries()) runs.push(new Run(cache.admit(r.promptIds.length), r, tokenizer, i));
    const t0 = performance.now();
    let logits = model.prefill(cache, runs.map((r) => ({ id: r.id, tokens: r.request.promptIds })));
    const t1 = performance.now();
    let active = runs;
    let steps = 0;
    for (;;) {
      const next = sampleRows(model.backend, logits, active.map((r) => ({ options: r.request, uniform: r.uniform })));
      active.forEach((r, i) => r.accept(next[i], eos.has(next[i]), maxNewTokens(model, r.request)));
      const still = active.filter((r) => !r.finish);
      if (still.length === 0) break;
      const rows = active.flatMap((r, i) => (r.finish ? [] : [i]));
      // Finished sequences give their pages back at once; the others go on.
      for (const r of active) if (r.finish) cache.free(r.id);
      logits = model.decode(cache, still.map((r) => r.id), rows.map((i) => next[i]));
      steps++;
      active = still;
    }
    const t2 = performance.now();
    const kv = cache.stats();
    return {
      outputs: runs.map((r) => r.output()),
      timings: {
        prefillMs: t1 - t0,
        decodeMs: t2 - t1,
        promptTokens: requests.reduce((n, r) => n + r.promptIds.length, 0),
        generatedTokens: runs.reduce((n, r) => n + r.tokenIds.length, 0),
        decodeSteps: steps,
      },
      kv,
    };
  } finally {
    for (const r of runs) if (cache.has(r.id)) cache.free(r.id);
  }
}
