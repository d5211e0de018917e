import { KvCache, POLICY_NAMES, ReferenceBackend, poolPagesFor, type CacheOptions, type KvGeometry, type PolicyName } from '@arkvale/core';
import type { Tokenizer } from '@arkvale/model-llama';
import { EngineError, asEngineError } from './errors.js';
import { stepBound } from './step-bound.js';
import { checkTokenIds } from './token-ids.js';
import type { ResolvedEngineConfig } from './config.js';
import type { EngineRequest } from './types.js';
import type { OutputConstraint } from './output-constraint.js';

/** A checked request with its prompt ids: what the scheduler runs (plain data, so it crosses to a worker). */
export interface PreparedRequest {
  readonly id: string;
  readonly promptIds: number[];
  /** Tokens fed after the prompt one decode step at a time (teacher-forced) before anything is sampled. */
  readonly suffixIds: number[];
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number;
  readonly stop: string[];
  readonly ignoreEos: boolean;
  readonly policy: PolicyName;
  readonly budgetTokens: number;
  /** Whether this request starts from, and leaves its pages in, the prefix cache. */
  readonly cachePrefix: boolean;
  /** Alternatives per generated token's log-probabilities, or null for none. */
  readonly logprobs: number | null;
  /** Alternatives per prompt token's log-probabilities, or null for none. */
  readonly promptLogprobs: number | null;
  /** A request in flight whose prefilled prompt this one forks, or null. */
  readonly sharePromptWith: string | null;
  /** The grammar the output is held to, or null. */
  readonly constraint: OutputConstraint | null;
}

/** The cache options of one KV plan under this engine configuration. */
export function planOptions(config: ResolvedEngineConfig, policy: PolicyName, budgetTokens: number): CacheOptions {
  return {
    policy,
    budgetTokens,
    sinkPages: config.sinkPages,
    windowPages: config.windowPages,
    fullLayers: config.fullLayers,
    topK: config.topK,
    digest: config.digest,
    selection: config.selection,
    devicePages: config.devicePages,
    hostPages: config.hostPages,
  };
}

export const planKey = (policy: PolicyName, budget: number): string => `${policy}@${budget}`;

const invalid = (message: string, param: string) => new EngineError('invalid_request', message, param);

function sharedWith(id: unknown): string | null {
  if (id === undefined || id === null) return null;
  if (typeof id !== 'string' || id === '') throw invalid('sharePromptWith must be the id of a request in flight', 'sharePromptWith');
  return id;
}

/** Most likely alternatives reported per position: 0 to 20 (OpenAI's top_logprobs range), or null when not asked. */
const MAX_TOP_LOGPROBS = 20;
function topCount(value: number | undefined, param: string): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isInteger(value) || value < 0 || value > MAX_TOP_LOGPROBS) throw invalid(`${param} must be an integer from 0 to ${MAX_TOP_LOGPROBS}`, param);
  return value;
}

/**
 * Checks requests before they are queued, with everything known up front: sampling,
 * lengths against the model's positions, the KV plan, and whether the request can
 * ever fit the pools. Small planning caches (one page) answer the page questions.
 */
export class RequestPlanner {
  private readonly planners = new Map<string, KvCache>();
  private readonly backend = new ReferenceBackend();

  constructor(
    private readonly config: ResolvedEngineConfig,
    private readonly geometry: KvGeometry,
    /** null: a model of token ids only (ShapeModel), whose prompts must come as ids. */
    private readonly tokenizer: Tokenizer | null,
    private readonly maxPositions: number,
    private readonly vocabSize: number,
  ) {}

  prepare(r: EngineRequest, id: string): PreparedRequest {
    const promptIds = this.promptIds(r.prompt);
    const logprobs = topCount(r.logprobs, 'logprobs');
    const promptLogprobs = topCount(r.promptLogprobs, 'prompt_logprobs');
    const maxTokens = r.maxTokens ?? 16;
    const least = promptLogprobs === null ? 1 : 0;
    if (!Number.isInteger(maxTokens) || maxTokens < least) {
      throw invalid(
        `max_tokens must be an integer >= ${least}${least ? ' (0 only when scoring the prompt: echo with logprobs)' : ''}, got ${String(r.maxTokens)}`,
        'max_tokens',
      );
    }
    if (promptIds.length + maxTokens > this.maxPositions) {
      throw new EngineError(
        'context_length_exceeded',
        `This model's maximum context length is ${this.maxPositions} tokens. However, you requested ${promptIds.length + maxTokens} tokens ` +
          `(${promptIds.length} in the prompt, ${maxTokens} for the completion). Please reduce the prompt or max_tokens.`,
        'max_tokens',
      );
    }
    const temperature = r.temperature ?? 0;
    if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) throw invalid(`temperature must be a number >= 0`, 'temperature');
    const topK = r.topK ?? 0;
    if (!Number.isInteger(topK) || topK < 0) throw invalid('top_k must be an integer >= 0', 'top_k');
    const topP = r.topP ?? 1;
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw invalid('top_p must be in (0, 1]', 'top_p');
    const seed = r.seed ?? Math.floor(Math.random() * 2 ** 31);
    if (!Number.isSafeInteger(seed)) throw invalid('seed must be an integer', 'seed');
    const stop = [...(r.stop ?? [])];
    if (stop.some((s) => typeof s !== 'string')) throw invalid('stop must be strings', 'stop');
    if (stop.length > 0 && !this.tokenizer)
      throw invalid('this model has no tokenizer (random weights at a model shape), so it cannot match stop strings', 'stop');
    const policy = r.kvPolicy ?? this.config.policy;
    if (!(POLICY_NAMES as readonly string[]).includes(policy))
      throw invalid(`unknown kv_policy "${String(policy)}"; expected one of: ${POLICY_NAMES.join(', ')}`, 'kv_policy');
    if (r.cachePrefix !== undefined && typeof r.cachePrefix !== 'boolean') throw invalid('cache_prefix must be a boolean', 'cache_prefix');
    const budgetTokens = r.kvBudget ?? this.config.budgetTokens;
    if (!Number.isInteger(budgetTokens) || budgetTokens < 1) throw invalid('kv_budget must be an integer >= 1 (tokens)', 'kv_budget');
    this.checkFits(policy, budgetTokens, promptIds.length, promptIds.length + maxTokens);
    return {
      id,
      promptIds,
      suffixIds: [],
      maxTokens,
      temperature,
      topK,
      topP,
      seed,
      stop,
      ignoreEos: r.ignoreEos ?? false,
      policy,
      budgetTokens,
      cachePrefix: r.cachePrefix ?? true,
      logprobs,
      promptLogprobs,
      sharePromptWith: sharedWith(r.sharePromptWith),
      constraint: this.constraintOf(r.responseFormat),
    };
  }

  private constraintOf(c: EngineRequest['responseFormat']): OutputConstraint | null {
    if (c === undefined || c === null) return null;
    if (!this.tokenizer)
      throw invalid('this model has no tokenizer (random weights at a model shape), so it cannot hold its output to JSON', 'response_format');
    if (c.type === 'json_object') return { type: 'json_object' };
    if (c.type === 'json_schema' && c.schema !== null && typeof c.schema === 'object' && !Array.isArray(c.schema))
      return { type: 'json_schema', schema: c.schema };
    throw invalid('response_format must be {type: "json_object"} or {type: "json_schema"} with a schema object', 'response_format');
  }

  /** One token's text as log-probabilities show it (see AsyncEngine.tokenText). */
  tokenText(tokenId: number): string {
    if (!this.tokenizer) return `token_id:${tokenId}`;
    return this.tokenizer.decode([tokenId], { skipSpecialTokens: false });
  }

  decode(tokenIds: readonly number[]): string {
    return this.tokenizer ? this.tokenizer.decode(tokenIds, { skipSpecialTokens: true }) : '';
  }

  private promptIds(prompt: EngineRequest['prompt']): number[] {
    if (typeof prompt === 'string') {
      if (!this.tokenizer) throw invalid('this model has no tokenizer (random weights at a model shape): send the prompt as an array of token ids', 'prompt');
      const ids = this.tokenizer.encode(prompt);
      if (ids.length === 0) throw invalid('the prompt is empty', 'prompt');
      return ids;
    }
    if (!Array.isArray(prompt) || prompt.length === 0) throw invalid('the prompt must be a non-empty string or array of token ids', 'prompt');
    try {
      if (this.tokenizer) for (const t of prompt) this.tokenizer.checkId(t);
      else checkTokenIds(prompt, this.vocabSize);
    } catch (e) {
      throw asEngineError(e, 'prompt');
    }
    return [...prompt];
  }

  /** A planning cache of the plan (one page: only its arithmetic is used). */
  planner(policy: PolicyName, budget: number): KvCache {
    const key = planKey(policy, budget);
    let cache = this.planners.get(key);
    if (!cache) {
      try {
        cache = new KvCache({
          geometry: this.geometry,
          options: { ...planOptions(this.config, policy, budget), devicePages: 1, hostPages: 0 },
          backend: this.backend,
        });
      } catch (e) {
        throw asEngineError(e, 'kv_budget');
      }
      this.planners.set(key, cache);
    }
    return cache;
  }

  /** Refuses a request that could never run: its prefill peak or its longest decode over the pools. */
  private checkFits(policy: PolicyName, budget: number, promptLength: number, total: number): void {
    const cache = this.planner(policy, budget);
    const peak = cache.chunkedPrefillPeak(promptLength);
    const longest = poolPagesFor(this.geometry, cache.options, total, 1);
    const device = Math.max(peak.device, longest.devicePages) + stepBound(cache);
    const host = Math.max(peak.host, longest.hostPages);
    const c = this.config;
    if (device > c.devicePages || host > c.hostPages) {
      throw new EngineError(
        'context_length_exceeded',
        `a request of ${total} tokens under ${policy} @ ${budget} needs up to ${device} device and ${host} host KV pages; ` +
          `the pools hold ${c.devicePages} and ${c.hostPages}`,
        'max_tokens',
      );
    }
  }
}
