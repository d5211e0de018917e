import type { KvCache } from '@arkvale/core';
import { seededUniform, TextStream, type Tokenizer } from '@arkvale/model-llama';
import type { PreparedRequest } from './prepare.js';

export type JobPhase = 'waiting' | 'prefill' | 'decode' | 'parked';

/** One request inside the scheduler: its sequence, the token it feeds next, its text. */
export class Job {
  phase: JobPhase = 'waiting';
  cache: KvCache | null = null;
  seq = -1;
  /** The sampled token the next decode step feeds. */
  next = -1;
  /** Device pages the prefill will hold at its peak, and those its chunks took so far. */
  peakDevice = 0;
  takenDevice = 0;
  readonly text: TextStream;
  readonly uniform: () => number;

  constructor(
    readonly req: PreparedRequest,
    readonly arrival: number,
    tokenizer: Tokenizer,
  ) {
    this.text = new TextStream(tokenizer, req.promptIds, req.stop, req.maxTokens, req.ignoreEos);
    this.uniform = seededUniform(req.seed);
  }

  get id(): string {
    return this.req.id;
  }

  /** Gives the sequence's pages back (any phase). */
  release(): void {
    if (this.cache && this.seq >= 0 && this.cache.has(this.seq)) this.cache.free(this.seq);
    this.seq = -1;
  }
}
