import { seededUniform, type KvCache, type PoolNeeds } from '@arkvale/core';
import type { Tokenizer } from '@arkvale/model-llama';
import type { PreparedRequest } from './prepare.js';
import { TextStream } from './text-stream.js';

export type JobPhase = 'waiting' | 'prefill' | 'decode' | 'parked';

/** One request inside the scheduler: its sequence, the token it feeds next, its text. */
export class Job {
  phase: JobPhase = 'waiting';
  cache: KvCache | null = null;
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

  /** What the job's prefill step takes from the pools: the whole prompt's peak, or one chunk. */
  prefillNeeds(count: number, oneShot: boolean): PoolNeeds {
    return oneShot ? this.cache!.prefillPeak(this.req.promptIds.length) : this.cache!.prefillChunkNeeds(this.seq, count);
  }

  /** Gives the sequence's pages back (any phase). */
  release(): void {
    if (this.cache && this.seq >= 0 && this.cache.has(this.seq)) this.cache.free(this.seq);
    this.seq = -1;
  }
}
