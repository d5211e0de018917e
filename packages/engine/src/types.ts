import type { KvDtype, KvStats, PolicyName } from '@arkvale/core';
import type { PositionLogprobs } from './logprobs.js';
import type { OutputConstraint } from './output-constraint.js';
import type { ChatInputMessage } from './chat-format.js';

/** A generation request as the engine takes it. */
export interface EngineRequest {
  /** Your id for the request (default: a fresh one). Must be unique among the requests in flight. */
  readonly id?: string;
  /** Text (encoded with the tokenizer's BOS) or token ids as they are. */
  readonly prompt: string | readonly number[];
  /** Tokens to generate at most; 0 with `promptLogprobs` scores the prompt alone. Default 16. */
  readonly maxTokens?: number;
  /** 0 is greedy. Default 0. */
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  /** Seed of the sampler; the same seed gives the same tokens. Default: a fresh random seed. */
  readonly seed?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  readonly stop?: readonly string[];
  readonly ignoreEos?: boolean;
  /** KV policy and budget (tokens) of this request; default the engine's. */
  readonly kvPolicy?: PolicyName;
  readonly kvBudget?: number;
  /** Aborts the request when it fires. */
  readonly signal?: AbortSignal;
  /** false: neither start from the prefix cache nor leave this request's pages in it. Default true. */
  readonly cachePrefix?: boolean;
  /** Log-probability of each generated token and of the `logprobs` most likely ones (0-20). Default: none. */
  readonly logprobs?: number;
  /**
   * Log-probabilities of the prompt's tokens (all but the first), with the `promptLogprobs`
   * most likely at each position (0-20), in the done event. Such a prompt is prefilled
   * whole, not started from the prefix cache. Default: none.
   */
  readonly promptLogprobs?: number;
  /**
   * The id of a request in flight with the same prompt (the first of n choices): this one
   * waits for its prefill and forks its sequence, so that the prompt's pages are shared
   * (reference-counted), not prefilled again, and samples its first token from the same
   * logits with its own seed. If that request is gone or differs, this one prefills alone.
   */
  readonly sharePromptWith?: string;
  /** Hold the output to a grammar: any JSON object, or JSON valid under a JSON Schema (constrained sampling; needs a tokenizer). */
  readonly responseFormat?: OutputConstraint;
}

/** Why a sequence stopped by itself: end of sequence, a stop string, or its token limit. */
export type StopReason = 'eos' | 'stop' | 'length';
export type FinishReason = StopReason | 'abort';

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Prompt tokens taken from the prefix cache instead of prefilled (OpenAI's prompt_tokens_details.cached_tokens). */
  readonly cachedTokens: number;
}

/** One new token; `text` is what may be shown now (text a stop string could still cut is held back). */
export interface TokenEvent {
  readonly type: 'token';
  readonly tokenId: number;
  readonly text: string;
  /** With `logprobs`: this token's log-probability and the most likely alternatives. */
  readonly logprobs?: PositionLogprobs;
  /** With `promptLogprobs`, on the first token only: the prompt's (as in the done event), for a stream that echoes the prompt first. */
  readonly promptLogprobs?: readonly PositionLogprobs[];
}

/** The end of a request: the last text released, why it ended, and its token counts. */
export interface DoneEvent {
  readonly type: 'done';
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: Usage;
  /** With `promptLogprobs`: one entry per prompt token after the first. */
  readonly promptLogprobs?: readonly PositionLogprobs[];
}

export type EngineEvent = TokenEvent | DoneEvent;

/** A submitted request: iterate it for its events; the iterator throws an EngineError if the engine fails it. */
export interface RequestHandle extends AsyncIterable<EngineEvent> {
  readonly id: string;
  readonly promptTokens: number;
  /** The prompt as the model sees it (encoded text, or the ids given). */
  readonly promptIds: readonly number[];
}

export interface PrefixCacheGauge {
  readonly queries: number;
  readonly queryTokens: number;
  readonly hits: number;
  readonly hitTokens: number;
  /** Cached pages (one layer's worth of tokens each), and the device and host slots they hold over all layers. */
  readonly pages: number;
  readonly deviceSlots: number;
  readonly hostSlots: number;
}

export interface PoolGauge {
  /** Slots in use, of which `cached` are held only by the prefix cache (given back whenever a request needs them). */
  readonly used: number;
  readonly cached: number;
  readonly capacity: number;
  readonly bytesPerPage: number;
}

export interface EngineStats {
  readonly waiting: number;
  /** Admitted and on the device: prefilling or decoding. */
  readonly running: number;
  readonly prefilling: number;
  readonly parked: number;
  /** Sequences the KV caches hold (running and parked). */
  readonly sequences: number;
  readonly devicePages: PoolGauge;
  readonly hostPages: PoolGauge;
  readonly digestPages: PoolGauge;
  readonly steps: number;
  /** Steps of decode rows alone (no prompt chunk), and their time in all (scheduling, forward pass, sampling), ms. */
  readonly decodeSteps: number;
  readonly decodeStepMs: number;
  /** Tokens those steps decoded (one per sequence per step): over decodeStepMs, the decode phase's token rate. */
  readonly decodeStepRows: number;
  /** Decode-only steps replayed as a CUDA graph (the share of decodeSteps the backend did not issue call by call). */
  readonly graphReplayedSteps: number;
  /** Of those, steps replayed without running the forward pass's JavaScript (the host issued only the step's inputs and the graph). */
  readonly graphDirectSteps: number;
  /** Decode steps issued before the host read the tokens they feed, which the step before kept on the device (EngineConfig.overlapSteps). */
  readonly overlappedSteps: number;
  /** Prompt tokens run through the model; resuming a parked sequence adds none. */
  readonly prefillTokens: number;
  readonly promptTokens: number;
  readonly generationTokens: number;
  readonly recalls: number;
  readonly recallBytes: number;
  /** Means over the last steps (up to 128). */
  readonly recallsPerStep: number;
  readonly recallBytesPerStep: number;
  readonly parks: number;
  readonly resumes: number;
  /** Requests that forked another's prefilled prompt (n choices) instead of prefilling it. */
  readonly forks: number;
  readonly finished: number;
  readonly aborted: number;
  readonly failed: number;
  /** The prefix cache over every plan: prompts looked up and their tokens, hits and the tokens not prefilled, and the pages held. */
  readonly prefixCache: PrefixCacheGauge;
  /** Per KV plan (policy @ budget): the caches' own statistics. */
  readonly caches: readonly { readonly plan: string; readonly kv: KvStats }[];
}

/** What a client of the engine can know about the model it serves. */
export interface EngineModelInfo {
  /** The name requests use in `model` (the folder name by default). */
  readonly id: string;
  readonly dir: string;
  readonly maxPositions: number;
  readonly backend: string;
  readonly pageSize: number;
  /** How KV pages store K and V (EngineConfig.kvDtype). */
  readonly kvDtype: KvDtype;
  readonly defaultPolicy: PolicyName;
  readonly defaultBudget: number;
}

/** Per-request timings, measured where the events are consumed. */
export interface RequestObserver {
  onFirstToken?(seconds: number): void;
  onToken?(secondsSincePrevious: number): void;
  onDone?(info: { seconds: number; usage: Usage; finishReason: FinishReason | 'error' }): void;
}

/**
 * The engine as a plain async API (like vLLM's AsyncLLM): submit requests, iterate
 * their tokens, abort them, read statistics, close. Continuous batching happens
 * inside; any number of requests may be in flight.
 */
export interface AsyncEngine {
  readonly model: EngineModelInfo;
  /** Checks and queues a request; throws an EngineError (invalid request, queue full, closed) at once. */
  submit(request: EngineRequest): RequestHandle;
  /**
   * Checks every request, then queues them all at once (none when one is refused): the
   * scheduler takes them before its next step, so requests that share a prompt
   * (`sharePromptWith`, n choices) find the first still prefilling.
   */
  submitAll(requests: readonly EngineRequest[]): RequestHandle[];
  /** Aborts a request: its stream ends with finishReason 'abort' and its pages are freed. False if unknown. */
  abort(id: string): boolean;
  stats(): Promise<EngineStats>;
  observe(observer: RequestObserver): () => void;
  /** One token's text as log-probabilities show it: its piece (special tokens too), or `token_id:N` for a model without a tokenizer. */
  tokenText(tokenId: number): string;
  /** Token ids as text (special tokens kept out), or '' for a model without a tokenizer. */
  decode(tokenIds: readonly number[]): string;
  /** Renders chat messages with the model's template (or the configured one / the plain fallback) to prompt ids. */
  encodeChat(messages: readonly ChatInputMessage[], options?: { readonly tools?: readonly unknown[] }): number[];
  /** Where chat prompts come from: the model's template, a template file, or the plain fallback. */
  readonly chatFormat: string;
  /** Stops accepting requests, aborts those in flight, frees every page; resolves with the final statistics. */
  close(): Promise<EngineStats>;
}
