import { seededUniform, type PoolNeeds } from '@arkvale/core';
import type { ModelCache } from '@arkvale/model-llama';
import type { Tokenizer } from '@arkvale/model-llama';
import type { PreparedRequest } from './prepare.js';
import { TextStream } from './text-stream.js';
import type { PositionLogprobs } from './logprobs.js';
import type { ConstrainedOutput } from './output-constraint.js';

export type JobPhase = 'waiting' | 'prefill' | 'decode' | 'parked';

/** One request inside the scheduler: its sequence, the token it feeds next, its text. */
export class Job {
  phase: JobPhase = 'waiting';
  cache: ModelCache | null = null;
  seq = -1;
  /** The token the next decode step feeds: a suffix token, else the last sampled one. */
  next = -1;
  /** Whether `next` is a suffix token (teacher-forced) rather than a sampled one. */
  nextIsSuffix = false;
  /** Suffix tokens taken so far. */
  private fed = 0;
  /** Device pages the prefill will hold at its peak, and those its chunks took so far. */
  peakDevice = 0;
  takenDevice = 0;
  /** Admitted for a one-shot prefill (`KvCache.admit`): the whole prompt in one pass. */
  oneShot = false;
  /** Prompt tokens taken from the prefix cache at admission. */
  cachedTokens = 0;
  /** The grammar state of a constrained request, once compiled (null until then, and for others). */
  constraint: ConstrainedOutput | null = null;

  /** Whether a step may sample this job: always, unless its grammar's next mask is not known yet. */
  get sampleable(): boolean {
    return this.req.constraint === null || (this.constraint?.ready ?? false);
  }

  /** With promptLogprobs: each prompt token's after the first, as its prefill chunks ran. */
  readonly promptLogprobs: PositionLogprobs[] = [];
  readonly text: TextStream;
  readonly uniform: () => number;

  constructor(
    readonly req: PreparedRequest,
    readonly arrival: number,
    tokenizer: Tokenizer | null,
  ) {
    this.text = new TextStream(tokenizer, [...req.promptIds, ...req.suffixIds], req.stop, req.maxTokens, req.ignoreEos);
    this.uniform = seededUniform(req.seed);
  }

  get id(): string {
    return this.req.id;
  }

  /** Whether the row this job gets from the next forward pass feeds a suffix token instead of being sampled. */
  get hasSuffixLeft(): boolean {
    return this.fed < this.req.suffixIds.length;
  }

  /** Takes the next suffix token as the one the next decode step feeds. */
  feedSuffix(): number {
    this.next = this.req.suffixIds[this.fed++];
    this.nextIsSuffix = true;
    return this.next;
  }

  /** The prompt as the prefix cache sees it: its ids, or undefined when this request opts out. */
  get cacheablePrompt(): readonly number[] | undefined {
    // A prompt scored token by token is prefilled whole: cached tokens have no logits.
    return this.req.cachePrefix && this.req.promptLogprobs === null ? this.req.promptIds : undefined;
  }

  /** What the job's prefill step takes from the pools: the whole prompt's peak, or one chunk. */
  prefillNeeds(count: number): PoolNeeds {
    return this.oneShot ? this.cache!.prefillPeak(this.req.promptIds.length) : this.cache!.prefillChunkNeeds(this.seq, count);
  }

  /**
   * Gives the sequence's pages back (any phase). `keep`: leave its full pages in the
   * prefix cache (when on, and the request did not opt out), under its tokens: the
   * prompt, the suffix fed, then the tokens generated.
   */
  release(keep = false): void {
    this.constraint?.dispose();
    this.constraint = null;
    if (this.cache && this.seq >= 0 && this.cache.has(this.seq)) {
      const tokens = keep && this.req.cachePrefix ? [...this.req.promptIds, ...this.req.suffixIds, ...this.text.tokenIds] : undefined;
      this.cache.free(this.seq, tokens);
    }
    this.seq = -1;
  }
}
