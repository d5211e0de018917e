import { POLICY_NAMES } from '@arkvale/core';

/*
 * JSON schemas of the request bodies: OpenAI's fields with their types and ranges,
 * and the cache extras (kv_policy, kv_budget, cache_prefix, top_k, ignore_eos), and
 * return_token_ids (vLLM's: each choice, and each streamed chunk, carries its token ids). Fields this server
 * does not implement are listed so that a value asking for them is refused (400),
 * not silently ignored. Fields no schema names are accepted and ignored, as OpenAI
 * and its SDKs expect.
 *
 * Besides JSON Schema, a node may carry annotations that ./validation.ts reads to word
 * its errors (the validator ignores them):
 * - `x-expected`: what the value should be, in words ("a string or an array of content parts");
 * - `x-plural`: what many of them are called, for "an array of ..." ("messages");
 * - `x-allowed`: the values this server takes for a field it only partly implements ("1");
 * - `x-why`: why it takes only those ("this server generates one choice per request").
 */

type Schema = Record<string, unknown>;

/** Prompts in one completions request at most (a batch). */
export const MAX_BATCH = 64;
/** Choices per prompt at most (n). */
export const MAX_CHOICES = 16;

const nullable = (schema: Schema) => ({ anyOf: [schema, { type: 'null' }] });
/** An OpenAI field whose every value but null (or leaving it out) asks for something this server does not do. */
const unsupported = (type: string, why: string) => nullable({ type, not: {}, 'x-allowed': 'null or left out', 'x-why': why });

const PENALTIES = 'this server does not implement presence or frequency penalties';
const NO_FUNCTIONS = "the deprecated 'functions' field is not supported; send 'tools'";

const common = {
  model: { type: 'string', minLength: 1 },
  max_tokens: nullable({ type: 'integer', minimum: 1 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  top_k: nullable({ type: 'integer', minimum: -1 }),
  // Choices of one prompt fork its prefilled sequence (the prompt's pages are shared).
  n: nullable({ type: 'integer', minimum: 1, maximum: MAX_CHOICES }),
  seed: nullable({ type: 'integer' }),
  stop: nullable({
    anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 4 }],
    'x-expected': 'a string or an array of up to 4 strings',
  }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({ type: 'object', properties: { include_usage: { type: 'boolean' } } }),
  presence_penalty: nullable({ type: 'number', minimum: 0, maximum: 0, 'x-why': PENALTIES }),
  frequency_penalty: nullable({ type: 'number', minimum: 0, maximum: 0, 'x-why': PENALTIES }),
  logit_bias: nullable({ type: 'object', additionalProperties: { type: 'number' } }),
  user: { type: 'string' },
  ignore_eos: { type: 'boolean' },
  kv_policy: { type: 'string', enum: [...POLICY_NAMES] },
  kv_budget: { type: 'integer', minimum: 1 },
  cache_prefix: { type: 'boolean' },
  return_token_ids: { type: 'boolean' },
} as const;

export const completionBody = {
  type: 'object',
  required: ['model', 'prompt'],
  'x-expected': 'a JSON object',
  properties: {
    ...common,
    // 0 only scores the prompt (echo with logprobs: lm-evaluation-harness's log-likelihood request).
    max_tokens: nullable({ type: 'integer', minimum: 0 }),
    prompt: {
      'x-expected': 'a string, an array of token ids, or a batch: an array of strings or of token-id arrays',
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: MAX_BATCH },
        { type: 'array', items: { type: 'integer', minimum: 0, 'x-expected': 'an integer token id' }, minItems: 1 },
        {
          type: 'array',
          items: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, 'x-expected': 'an array of token ids' },
          minItems: 1,
          maxItems: MAX_BATCH,
        },
      ],
    },
    echo: nullable({ type: 'boolean' }),
    logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
    suffix: unsupported('string', 'this server does not insert text (suffix)'),
    best_of: nullable({
      type: 'integer',
      minimum: 1,
      maximum: 1,
      'x-why': 'this server does not rank candidates (best_of); ask for n choices and pick among them yourself',
    }),
  },
} as const;

/** A content part: only text parts ({type: 'text', text}) are read. */
const contentPart = {
  type: 'object',
  'x-expected': "a content part (an object with 'type' and 'text')",
  'x-plural': 'content parts',
  required: ['type'],
  // Required only for text parts, so that an image part is refused for its type, not for a missing text.
  if: { properties: { type: { const: 'text' } } },
  then: { required: ['text'] },
  properties: {
    type: { type: 'string', const: 'text', 'x-why': 'this server reads text content only' },
    text: { type: 'string' },
  },
} as const;

const CONTENT = 'a string or an array of content parts';
const contentParts = { type: 'array', items: contentPart };

/** The roles whose messages must have content (an assistant message may leave it out or send null). */
const CONTENT_ROLES = ['system', 'developer', 'user', 'tool'];

const functionName = { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$', 'x-expected': 'a function name (letters, digits, _ and -, up to 64)' };

/** A call the assistant made, as a later turn sends it back. */
const toolCall = {
  type: 'object',
  required: ['id', 'type', 'function'],
  properties: {
    id: { type: 'string' },
    type: { type: 'string', const: 'function' },
    function: { type: 'object', required: ['name', 'arguments'], properties: { name: functionName, arguments: { type: 'string' } } },
  },
} as const;

const toolDef = {
  type: 'object',
  'x-expected': 'a tool object',
  'x-plural': 'tools',
  required: ['type', 'function'],
  properties: {
    type: { type: 'string', const: 'function', 'x-why': 'this server calls functions only' },
    function: {
      type: 'object',
      required: ['name'],
      properties: { name: functionName, description: { type: 'string' }, parameters: { type: 'object' }, strict: nullable({ type: 'boolean' }) },
    },
  },
} as const;

const message = {
  type: 'object',
  'x-expected': 'a message object',
  'x-plural': 'messages',
  required: ['role'],
  if: { required: ['role'], properties: { role: { enum: CONTENT_ROLES } } },
  then: { required: ['content'], properties: { content: { anyOf: [{ type: 'string' }, contentParts], 'x-expected': CONTENT } } },
  properties: {
    role: { type: 'string', enum: [...CONTENT_ROLES, 'assistant'] },
    content: { anyOf: [{ type: 'string' }, { type: 'null' }, contentParts], 'x-expected': CONTENT },
    name: { type: 'string' },
    tool_calls: { type: 'array', items: toolCall },
    tool_call_id: { type: 'string' },
  },
} as const;

export const chatBody = {
  type: 'object',
  required: ['model', 'messages'],
  'x-expected': 'a JSON object',
  properties: {
    ...common,
    max_completion_tokens: nullable({ type: 'integer', minimum: 1 }),
    messages: { type: 'array', minItems: 1, items: message },
    logprobs: nullable({ type: 'boolean' }),
    top_logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
    tools: nullable({ type: 'array', items: toolDef, maxItems: 128 }),
    tool_choice: nullable({
      anyOf: [
        { type: 'string', enum: ['none', 'auto', 'required'] },
        {
          type: 'object',
          required: ['type', 'function'],
          properties: { type: { const: 'function' }, function: { type: 'object', required: ['name'], properties: { name: functionName } } },
        },
      ],
      'x-expected': "'none', 'auto', 'required' or {type: 'function', function: {name}}",
    }),
    functions: nullable({ type: 'array', maxItems: 0, 'x-why': NO_FUNCTIONS }),
    parallel_tool_calls: nullable({ type: 'boolean' }),
    // json_object and json_schema hold the output to JSON by constrained sampling.
    response_format: nullable({
      type: 'object',
      required: ['type'],
      properties: {
        type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
        json_schema: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string' }, schema: { type: 'object' }, strict: nullable({ type: 'boolean' }) },
        },
      },
      if: { properties: { type: { const: 'json_schema' } } },
      then: { required: ['type', 'json_schema'] },
    }),
    store: nullable({ type: 'boolean' }),
    metadata: nullable({ type: 'object', additionalProperties: { type: 'string' } }),
  },
} as const;

export const modelParams = { type: 'object', properties: { model: { type: 'string' } } } as const;
