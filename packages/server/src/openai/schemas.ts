import { POLICY_NAMES } from '@arkvale/core';

/*
 * JSON schemas of the request bodies: OpenAI's fields with their types and ranges,
 * and the cache extras (kv_policy, kv_budget, top_k, ignore_eos). Fields this server
 * does not implement are listed so that a value asking for them is refused (400),
 * not silently ignored.
 */

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });

const common = {
  model: { type: 'string', minLength: 1 },
  max_tokens: nullable({ type: 'integer', minimum: 1 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  top_k: nullable({ type: 'integer', minimum: -1 }),
  n: nullable({ type: 'integer', minimum: 1, maximum: 1 }),
  seed: nullable({ type: 'integer' }),
  stop: nullable({ anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 4 }] }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({ type: 'object', properties: { include_usage: { type: 'boolean' } } }),
  presence_penalty: nullable({ type: 'number', minimum: 0, maximum: 0 }),
  frequency_penalty: nullable({ type: 'number', minimum: 0, maximum: 0 }),
  user: { type: 'string' },
  ignore_eos: { type: 'boolean' },
  kv_policy: { type: 'string', enum: [...POLICY_NAMES] },
  kv_budget: { type: 'integer', minimum: 1 },
} as const;

export const completionBody = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...common,
    prompt: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: 1 },
        { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 },
      ],
    },
    echo: nullable({ type: 'boolean', enum: [false] }),
    logprobs: { type: 'null' },
    suffix: { type: 'null' },
    best_of: nullable({ type: 'integer', minimum: 1, maximum: 1 }),
  },
} as const;

export const chatBody = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...common,
    max_completion_tokens: nullable({ type: 'integer', minimum: 1 }),
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant'] },
          content: {
            anyOf: [
              { type: 'string' },
              { type: 'null' },
              { type: 'array', items: { type: 'object', required: ['type', 'text'], properties: { type: { const: 'text' }, text: { type: 'string' } } } },
            ],
          },
          name: { type: 'string' },
        },
      },
    },
    logprobs: nullable({ type: 'boolean', enum: [false] }),
    tools: { type: 'array', maxItems: 0 },
    response_format: { type: 'object', properties: { type: { const: 'text' } } },
  },
} as const;

export const modelParams = { type: 'object', properties: { model: { type: 'string' } } } as const;
