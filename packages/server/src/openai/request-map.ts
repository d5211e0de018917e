import type { PolicyName } from '@arkvale/core';
import { EngineError } from '@arkvale/engine';
import type { EngineRequest } from '@arkvale/engine';
import type { ToolChoice, ToolDef } from './tools.js';

/** The body fields both endpoints share (already checked by the JSON schema). */
export interface CommonBody {
  readonly model: string;
  readonly max_tokens?: number | null;
  readonly temperature?: number | null;
  readonly top_p?: number | null;
  readonly top_k?: number | null;
  readonly seed?: number | null;
  readonly stop?: string | string[] | null;
  readonly stream?: boolean | null;
  readonly stream_options?: { include_usage?: boolean } | null;
  readonly ignore_eos?: boolean;
  readonly kv_policy?: PolicyName;
  readonly kv_budget?: number;
  readonly cache_prefix?: boolean;
  readonly return_token_ids?: boolean;
  readonly n?: number | null;
}

export interface CompletionBody extends CommonBody {
  readonly prompt: string | string[] | number[] | number[][];
  readonly echo?: boolean | null;
  readonly logprobs?: number | null;
}

export interface ChatBody extends CommonBody {
  readonly messages: { role: string; content?: unknown; tool_calls?: unknown; tool_call_id?: string; name?: string }[];
  readonly max_completion_tokens?: number | null;
  readonly logprobs?: boolean | null;
  readonly top_logprobs?: number | null;
  readonly tools?: ToolDef[] | null;
  readonly tool_choice?: ToolChoice | null;
  readonly response_format?: { type: 'text' | 'json_object' | 'json_schema'; json_schema?: { name: string; schema?: Record<string, unknown> } } | null;
}

/** OpenAI's defaults: temperature 1, 16 tokens for completions, up to the context for chat. */
export function engineRequest(body: CommonBody, prompt: EngineRequest['prompt'], maxTokens: number | null | undefined, signal: AbortSignal): EngineRequest {
  const stop = body.stop === null || body.stop === undefined ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    prompt,
    maxTokens: maxTokens ?? undefined,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k === -1 ? 0 : (body.top_k ?? 0),
    seed: body.seed ?? undefined,
    stop,
    ignoreEos: body.ignore_eos ?? false,
    kvPolicy: body.kv_policy,
    kvBudget: body.kv_budget,
    cachePrefix: body.cache_prefix,
    signal,
  };
}

/** The prompts of a completions request: one, or a batch (an array of strings or of token-id arrays). */
export function completionPrompts(body: CompletionBody): EngineRequest['prompt'][] {
  const p = body.prompt;
  if (typeof p === 'string') return [p];
  if (typeof p[0] === 'number') return [p as number[]];
  return p as string[] | number[][];
}

/** What a completions request asks of log-probabilities: per generated token, and of the prompt when echoed (or scored alone, max_tokens 0). */
export function completionScoring(body: CompletionBody): Pick<EngineRequest, 'logprobs' | 'promptLogprobs'> {
  const logprobs = body.logprobs ?? undefined;
  const promptLogprobs = body.echo && logprobs !== undefined ? logprobs : body.max_tokens === 0 ? 0 : undefined;
  return { logprobs, promptLogprobs };
}

/** Chat log-probabilities: `logprobs: true`, with `top_logprobs` alternatives (default 0). */
export function chatScoring(body: ChatBody): Pick<EngineRequest, 'logprobs'> {
  return body.logprobs ? { logprobs: body.top_logprobs ?? 0 } : {};
}

/** response_format as the engine's output constraint (none for text). */
export function chatFormat(body: ChatBody): Pick<EngineRequest, 'responseFormat'> {
  const f = body.response_format;
  if (!f || f.type === 'text') return {};
  // A json_schema without a schema holds the output to any JSON object.
  if (f.type === 'json_object' || !f.json_schema?.schema) return { responseFormat: { type: 'json_object' } };
  return { responseFormat: { type: 'json_schema', schema: f.json_schema.schema } };
}

/** Chat replies default to the rest of the context (capped so the request still fits a small pool). */
export function chatMaxTokens(body: ChatBody, promptTokens: number, maxPositions: number): number {
  const given = body.max_completion_tokens ?? body.max_tokens;
  if (given !== null && given !== undefined) return given;
  return Math.max(1, Math.min(256, maxPositions - promptTokens));
}

export function checkModel(model: string, served: string): void {
  if (model !== served) throw new EngineError('invalid_request', `The model \`${model}\` does not exist (this server serves \`${served}\`)`, 'model');
}
