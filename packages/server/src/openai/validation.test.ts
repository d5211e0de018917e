import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { openaiRoutes, type OpenAiRoutesOptions } from './plugin.js';
import { chatBody } from './schemas.js';
import { explainValidation } from './validation.js';

/*
 * Request validation of the OpenAI routes, without a model: the routes around a fake
 * engine that records what reaches it. Every malformed body is a 400 in OpenAI's shape
 * whose `param` is the field's OpenAI path and whose message is one sentence naming it.
 */

const M = 'fake-model';
const user = { role: 'user', content: 'hi' };
const chat = (extra: Record<string, unknown>) => ({ model: M, messages: [user], ...extra });
const completion = (extra: Record<string, unknown>) => ({ model: M, prompt: 'The old farmer', ...extra });

interface Seen {
  chats: unknown[];
  requests: Record<string, unknown>[];
}

function fakeEngine(seen: Seen): OpenAiRoutesOptions['engine'] {
  const engine = {
    model: { id: M, maxPositions: 2048 },
    chatFormat: 'fake',
    encodeChat(messages: unknown) {
      seen.chats.push(messages);
      return [1, 2, 3];
    },
    submitAll(requests: Record<string, unknown>[]) {
      return requests.map((request) => {
        seen.requests.push(request);
        return {
          id: `r${seen.requests.length}`,
          promptTokens: 3,
          promptIds: [1, 2, 3],
          async *[Symbol.asyncIterator]() {
            yield { type: 'done', text: 'ok', finishReason: 'eos', usage: { promptTokens: 3, completionTokens: 1, cachedTokens: 0 } };
          },
        };
      });
    },
    abort: () => false,
  };
  return (() => engine) as unknown as OpenAiRoutesOptions['engine'];
}

interface Case {
  readonly name: string;
  readonly route?: 'chat' | 'completions';
  /** A value to send as JSON, or the raw body. */
  readonly body?: unknown;
  readonly raw?: string;
  readonly param: string | null;
  /** The whole message, or its start for messages that quote the JSON parser. */
  readonly message: string | { startsWith: string };
}

const CASES: Case[] = [
  // The body itself.
  { name: 'body not JSON', raw: 'not json at all', param: null, message: { startsWith: 'The request body is not valid JSON: ' } },
  { name: 'body cut short', raw: '{"model": "fake-model", "messages": ', param: null, message: { startsWith: 'The request body is not valid JSON: ' } },
  { name: 'body empty', raw: '', param: null, message: 'The request body is empty; expected a JSON object.' },
  { name: 'body an array', body: [1, 2, 3], param: null, message: 'The request body must be a JSON object, but got an array.' },
  { name: 'body a string', body: 'hello', param: null, message: 'The request body must be a JSON object, but got a string.' },
  { name: 'body a number', route: 'completions', raw: '42', param: null, message: 'The request body must be a JSON object, but got a number.' },
  {
    name: 'body with __proto__',
    raw: '{"__proto__": {"x": 1}, "model": "fake-model", "messages": []}',
    param: null,
    message: 'The request body is not valid JSON: "__proto__" is not allowed as a key.',
  },

  // model
  { name: 'missing model', body: { messages: [user] }, param: 'model', message: "Missing required parameter: 'model'." },
  { name: 'model a number', body: chat({ model: 4 }), param: 'model', message: "Invalid type for 'model': expected a string, but got a number." },
  { name: 'model empty', body: chat({ model: '' }), param: 'model', message: "Invalid value for 'model': must be a non-empty string, got an empty string." },

  // messages
  { name: 'missing messages', body: { model: M }, param: 'messages', message: "Missing required parameter: 'messages'." },
  {
    name: 'messages a string',
    body: chat({ messages: 'hi' }),
    param: 'messages',
    message: "Invalid type for 'messages': expected an array of messages, but got a string.",
  },
  {
    name: 'messages an object',
    body: chat({ messages: user }),
    param: 'messages',
    message: "Invalid type for 'messages': expected an array of messages, but got an object.",
  },
  {
    name: 'messages null',
    body: chat({ messages: null }),
    param: 'messages',
    message: "Invalid type for 'messages': expected an array of messages, but got null.",
  },
  {
    name: 'messages empty',
    body: chat({ messages: [] }),
    param: 'messages',
    message: "Invalid value for 'messages': must be a non-empty array, got an empty array.",
  },
  {
    name: 'message a string',
    body: chat({ messages: ['hi'] }),
    param: 'messages[0]',
    message: "Invalid type for 'messages[0]': expected a message object, but got a string.",
  },
  {
    name: 'message missing role',
    body: chat({ messages: [{ content: 'hi' }] }),
    param: 'messages[0].role',
    message: "Missing required parameter: 'messages[0].role'.",
  },
  {
    name: 'second message missing role',
    body: chat({ messages: [user, { content: 'again' }] }),
    param: 'messages[1].role',
    message: "Missing required parameter: 'messages[1].role'.",
  },
  {
    name: 'bad role',
    body: chat({ messages: [{ role: 'wizard', content: 'hi' }] }),
    param: 'messages[0].role',
    message: "Invalid value for 'messages[0].role': must be one of 'system', 'developer', 'user', 'tool', or 'assistant', got 'wizard'.",
  },
  {
    name: 'role a number',
    body: chat({ messages: [{ role: 1, content: 'hi' }] }),
    param: 'messages[0].role',
    message: "Invalid type for 'messages[0].role': expected a string, but got a number.",
  },
  {
    name: 'user message missing content',
    body: chat({ messages: [{ role: 'user' }] }),
    param: 'messages[0].content',
    message: "Missing required parameter: 'messages[0].content'.",
  },
  {
    name: 'system message missing content',
    body: chat({ messages: [{ role: 'system' }, user] }),
    param: 'messages[0].content',
    message: "Missing required parameter: 'messages[0].content'.",
  },
  {
    name: 'content a number',
    body: chat({ messages: [{ role: 'user', content: 5 }] }),
    param: 'messages[0].content',
    message: "Invalid type for 'messages[0].content': expected a string or an array of content parts, but got a number.",
  },
  {
    name: 'user content null',
    body: chat({ messages: [{ role: 'user', content: null }] }),
    param: 'messages[0].content',
    message: "Invalid type for 'messages[0].content': expected a string or an array of content parts, but got null.",
  },
  {
    name: 'content an object',
    body: chat({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }] }),
    param: 'messages[0].content',
    message: "Invalid type for 'messages[0].content': expected a string or an array of content parts, but got an object.",
  },
  {
    name: 'assistant content a boolean',
    body: chat({ messages: [user, { role: 'assistant', content: true }] }),
    param: 'messages[1].content',
    message: "Invalid type for 'messages[1].content': expected a string or an array of content parts, but got a boolean.",
  },
  {
    name: 'content part without text',
    body: chat({ messages: [{ role: 'user', content: [{ type: 'text' }] }] }),
    param: 'messages[0].content[0].text',
    message: "Missing required parameter: 'messages[0].content[0].text'.",
  },
  {
    name: 'content part without type',
    body: chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { text: 'b' }] }] }),
    param: 'messages[0].content[1].type',
    message: "Missing required parameter: 'messages[0].content[1].type'.",
  },
  {
    name: 'content part text a number',
    body: chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 7 }] }] }),
    param: 'messages[0].content[0].text',
    message: "Invalid type for 'messages[0].content[0].text': expected a string, but got a number.",
  },
  {
    name: 'content part an image',
    body: chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }),
    param: 'messages[0].content[0].type',
    message: "Invalid value for 'messages[0].content[0].type': must be 'text', got 'image_url'; this server reads text content only.",
  },
  {
    name: 'content part a string',
    body: chat({ messages: [{ role: 'user', content: ['hi'] }] }),
    param: 'messages[0].content[0]',
    message: "Invalid type for 'messages[0].content[0]': expected a content part (an object with 'type' and 'text'), but got a string.",
  },
  {
    name: 'message name a number',
    body: chat({ messages: [{ role: 'user', content: 'hi', name: 3 }] }),
    param: 'messages[0].name',
    message: "Invalid type for 'messages[0].name': expected a string, but got a number.",
  },

  // Sampling and length.
  { name: 'n too large', body: chat({ n: 17 }), param: 'n', message: "Invalid value for 'n': must be an integer between 1 and 16, got 17." },
  { name: 'n zero', body: chat({ n: 0 }), param: 'n', message: "Invalid value for 'n': must be an integer between 1 and 16, got 0." },
  { name: 'n a string', body: chat({ n: '1' }), param: 'n', message: "Invalid type for 'n': expected an integer, but got a string." },
  {
    name: 'temperature too high',
    body: chat({ temperature: 3 }),
    param: 'temperature',
    message: "Invalid value for 'temperature': must be a number between 0 and 2, got 3.",
  },
  {
    name: 'temperature negative',
    route: 'completions',
    body: completion({ temperature: -0.5 }),
    param: 'temperature',
    message: "Invalid value for 'temperature': must be a number between 0 and 2, got -0.5.",
  },
  {
    name: 'temperature a string',
    body: chat({ temperature: 'hot' }),
    param: 'temperature',
    message: "Invalid type for 'temperature': expected a number, but got a string.",
  },
  { name: 'top_p zero', body: chat({ top_p: 0 }), param: 'top_p', message: "Invalid value for 'top_p': must be a number > 0 and <= 1, got 0." },
  {
    name: 'max_tokens negative',
    body: chat({ max_tokens: -3 }),
    param: 'max_tokens',
    message: "Invalid value for 'max_tokens': must be an integer >= 1, got -3.",
  },
  {
    name: 'max_tokens not an integer',
    route: 'completions',
    body: completion({ max_tokens: 2.5 }),
    param: 'max_tokens',
    message: "Invalid value for 'max_tokens': must be an integer >= 0, got 2.5.",
  },
  {
    name: 'max_tokens a string',
    route: 'completions',
    body: completion({ max_tokens: '5' }),
    param: 'max_tokens',
    message: "Invalid type for 'max_tokens': expected an integer, but got a string.",
  },
  {
    name: 'max_completion_tokens zero',
    body: chat({ max_completion_tokens: 0 }),
    param: 'max_completion_tokens',
    message: "Invalid value for 'max_completion_tokens': must be an integer >= 1, got 0.",
  },
  { name: 'seed a float', body: chat({ seed: 1.5 }), param: 'seed', message: "Invalid value for 'seed': must be an integer, got 1.5." },
  {
    name: 'presence_penalty set',
    body: chat({ presence_penalty: 0.5 }),
    param: 'presence_penalty',
    message: "Invalid value for 'presence_penalty': must be 0, got 0.5; this server does not implement presence or frequency penalties.",
  },

  // stop
  { name: 'stop with a number', body: chat({ stop: [1] }), param: 'stop[0]', message: "Invalid type for 'stop[0]': expected a string, but got a number." },
  {
    name: 'stop with a null after a string',
    body: chat({ stop: ['a', null] }),
    param: 'stop[1]',
    message: "Invalid type for 'stop[1]': expected a string, but got null.",
  },
  {
    name: 'stop a number',
    body: chat({ stop: 5 }),
    param: 'stop',
    message: "Invalid type for 'stop': expected a string or an array of up to 4 strings, but got a number.",
  },
  {
    name: 'stop too long',
    body: chat({ stop: ['a', 'b', 'c', 'd', 'e'] }),
    param: 'stop',
    message: "Invalid value for 'stop': must have at most 4 entries, got 5 entries.",
  },

  // stream
  { name: 'stream a string', body: chat({ stream: 'yes' }), param: 'stream', message: "Invalid type for 'stream': expected a boolean, but got a string." },
  {
    name: 'stream a number',
    route: 'completions',
    body: completion({ stream: 1 }),
    param: 'stream',
    message: "Invalid type for 'stream': expected a boolean, but got a number.",
  },
  {
    name: 'stream_options.include_usage a string',
    body: chat({ stream: true, stream_options: { include_usage: 'yes' } }),
    param: 'stream_options.include_usage',
    message: "Invalid type for 'stream_options.include_usage': expected a boolean, but got a string.",
  },

  // prompt (completions)
  { name: 'missing prompt', route: 'completions', body: { model: M }, param: 'prompt', message: "Missing required parameter: 'prompt'." },
  {
    name: 'prompt a number',
    route: 'completions',
    body: completion({ prompt: 5 }),
    param: 'prompt',
    message: "Invalid type for 'prompt': expected a string, an array of token ids, or a batch: an array of strings or of token-id arrays, but got a number.",
  },
  {
    name: 'prompt an object',
    route: 'completions',
    body: completion({ prompt: { text: 'x' } }),
    param: 'prompt',
    message: "Invalid type for 'prompt': expected a string, an array of token ids, or a batch: an array of strings or of token-id arrays, but got an object.",
  },
  {
    name: 'prompt empty',
    route: 'completions',
    body: completion({ prompt: '' }),
    param: 'prompt',
    message: "Invalid value for 'prompt': must be a non-empty string, got an empty string.",
  },
  {
    name: 'prompt a batch over 64',
    route: 'completions',
    body: completion({ prompt: Array.from({ length: 65 }, () => 'a') }),
    param: 'prompt',
    message: "Invalid value for 'prompt': must have at most 64 entries, got 65 entries.",
  },
  {
    name: 'prompt a negative token id',
    route: 'completions',
    body: completion({ prompt: [-1] }),
    param: 'prompt[0]',
    message: "Invalid value for 'prompt[0]': must be an integer >= 0, got -1.",
  },
  {
    name: 'prompt a fractional token id',
    route: 'completions',
    body: completion({ prompt: [3, 1.5] }),
    param: 'prompt[1]',
    message: "Invalid value for 'prompt[1]': must be an integer >= 0, got 1.5.",
  },
  {
    name: 'prompt array of booleans',
    route: 'completions',
    body: completion({ prompt: [true] }),
    param: 'prompt[0]',
    message: "Invalid type for 'prompt[0]': expected a string, an integer token id, or an array of token ids, but got a boolean.",
  },

  // What this server does not implement, and the cache extras.
  {
    name: 'echo a string',
    route: 'completions',
    body: completion({ echo: 'yes' }),
    param: 'echo',
    message: "Invalid type for 'echo': expected a boolean, but got a string.",
  },
  {
    name: 'completion logprobs over 20',
    route: 'completions',
    body: completion({ logprobs: 21 }),
    param: 'logprobs',
    message: "Invalid value for 'logprobs': must be an integer between 0 and 20, got 21.",
  },
  {
    name: 'best_of 2',
    route: 'completions',
    body: completion({ best_of: 2 }),
    param: 'best_of',
    message: "Invalid value for 'best_of': must be 1, got 2; this server does not rank candidates (best_of); ask for n choices and pick among them yourself.",
  },
  {
    name: 'chat top_logprobs over 20',
    body: chat({ logprobs: true, top_logprobs: 21 }),
    param: 'top_logprobs',
    message: "Invalid value for 'top_logprobs': must be an integer between 0 and 20, got 21.",
  },
  {
    name: 'a tool with a bad name',
    body: chat({ tools: [{ type: 'function', function: { name: 'get weather!' } }] }),
    param: 'tools[0].function.name',
    message: "Invalid value for 'tools[0].function.name': must match pattern \"^[a-zA-Z0-9_-]{1,64}$\", got 'get weather!'.",
  },
  {
    name: 'response_format of an unknown type',
    body: chat({ response_format: { type: 'yaml' } }),
    param: 'response_format.type',
    message: "Invalid value for 'response_format.type': must be one of 'text', 'json_object', or 'json_schema', got 'yaml'.",
  },
  {
    name: 'response_format json_schema without one',
    body: chat({ response_format: { type: 'json_schema' } }),
    param: 'response_format.json_schema',
    message: "Missing required parameter: 'response_format.json_schema'.",
  },
  {
    name: 'unknown kv_policy',
    route: 'completions',
    body: completion({ kv_policy: 'lru' }),
    param: 'kv_policy',
    message: "Invalid value for 'kv_policy': must be one of 'full', 'streaming-llm', 'h2o', 'tova', 'quest', or 'arkvale', got 'lru'.",
  },
  { name: 'user a number', body: chat({ user: 42 }), param: 'user', message: "Invalid type for 'user': expected a string, but got a number." },
];

describe('OpenAI request validation', () => {
  let app: FastifyInstance;
  const seen: Seen = { chats: [], requests: [] };

  beforeAll(async () => {
    app = Fastify();
    await app.register(openaiRoutes, { prefix: '/v1', engine: fakeEngine(seen) });
    await app.ready();
  });
  afterAll(() => app?.close());
  beforeEach(() => {
    seen.chats.length = 0;
    seen.requests.length = 0;
  });

  const post = (route: 'chat' | 'completions', payload: string) =>
    app.inject({
      method: 'POST',
      url: route === 'chat' ? '/v1/chat/completions' : '/v1/completions',
      headers: { 'content-type': 'application/json' },
      payload,
    });

  it.each(CASES.map((c) => [c.name, c] as const))('%s: 400 naming the field', async (_name, c) => {
    const res = await post(c.route ?? 'chat', c.raw ?? JSON.stringify(c.body));
    expect(res.statusCode).toBe(400);
    const { error } = res.json() as { error: { message: string; type: string; param: string | null; code: string | null } };
    expect(error.type).toBe('invalid_request_error');
    expect(error.param).toBe(c.param);
    expect(typeof error.code).toBe('string');
    if (typeof c.message === 'string') expect(error.message).toBe(c.message);
    else expect(error.message.startsWith(c.message.startsWith)).toBe(true);
    // One readable sentence: capitalized, one final period, no validator dump.
    expect(error.message).toMatch(/^[A-Z][^\n]*\.$/);
    expect(error.message).not.toMatch(/\.\s+[A-Z]/);
    expect(error.message).not.toMatch(/body\/|instancePath|must match a schema|anyOf|must be equal to/);
    if (c.param !== null) expect(error.message).toContain(`'${c.param}'`);
    // Nothing reached the engine.
    expect(seen.chats).toHaveLength(0);
    expect(seen.requests).toHaveLength(0);
  });

  it('a valid chat body reaches the engine, with unknown fields accepted', async () => {
    const body = {
      model: M,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'developer', content: [{ type: 'text', text: 'rules' }] },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'hi' },
            { type: 'text', text: ' there', cache_control: { type: 'ephemeral' } },
          ],
          name: 'ann',
        },
        { role: 'assistant', content: null, refusal: null },
        { role: 'assistant' },
        { role: 'user', content: '' },
      ],
      max_tokens: 5,
      temperature: 0,
      top_p: 1,
      n: 1,
      stop: ['\n', 'END'],
      seed: 7,
      stream: false,
      stream_options: null,
      presence_penalty: 0,
      frequency_penalty: null,
      logprobs: false,
      top_logprobs: null,
      tools: [],
      response_format: { type: 'text' },
      logit_bias: { '50256': -100 },
      metadata: { team: 'blue' },
      store: false,
      parallel_tool_calls: true,
      service_tier: 'auto',
      some_future_field: { nested: [1, 'two'] },
      kv_policy: 'arkvale',
      kv_budget: 64,
    };
    const res = await post('chat', JSON.stringify(body));
    expect(res.statusCode, res.body).toBe(200);
    expect((res.json() as { choices: { message: { content: string } }[] }).choices[0].message.content).toBe('ok');
    expect(seen.chats).toHaveLength(1);
    expect((seen.chats[0] as { role: string }[]).map((m) => m.role)).toEqual(['system', 'developer', 'user', 'assistant', 'assistant', 'user']);
    expect(seen.requests[0]).toMatchObject({ maxTokens: 5, temperature: 0, stop: ['\n', 'END'], seed: 7, kvPolicy: 'arkvale', kvBudget: 64 });
  });

  it('valid completion bodies reach the engine: a string, one string, token ids; nulls for optional fields', async () => {
    for (const prompt of ['The old farmer', ['The old farmer'], [1, 2, 3]]) {
      const res = await post(
        'completions',
        JSON.stringify({
          model: M,
          prompt,
          max_tokens: null,
          temperature: null,
          stop: 'x',
          echo: false,
          logprobs: null,
          suffix: null,
          best_of: 1,
          user: 'u',
          extra: true,
        }),
      );
      expect(res.statusCode, res.body).toBe(200);
    }
    expect(seen.requests.map((r) => r.prompt)).toEqual(['The old farmer', 'The old farmer', [1, 2, 3]]);
  });

  it('a streamed chat passes validation too', async () => {
    const res = await post('chat', JSON.stringify(chat({ stream: true, stream_options: { include_usage: true } })));
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('data: [DONE]');
    expect(seen.requests).toHaveLength(1);
  });
});

describe('explainValidation without the schema', () => {
  it('still words the first error as one sentence naming the path', () => {
    const validate = new Ajv({ allErrors: false, strict: false }).compile(chatBody);
    const cases: [unknown, string, string][] = [
      [chat({ n: 17 }), 'n', "Invalid value for 'n': must be a number <= 16, got 17."],
      [chat({ stop: [1] }), 'stop[0]', "Invalid type for 'stop[0]': expected a string, but got a number."],
      [chat({ messages: [{ role: 'user' }] }), 'messages[0].content', "Missing required parameter: 'messages[0].content'."],
      [
        chat({ messages: [{ role: 'user', content: 5 }] }),
        'messages[0].content',
        "Invalid type for 'messages[0].content': expected a string or an array, but got a number.",
      ],
    ];
    for (const [body, param, message] of cases) {
      expect(validate(body)).toBe(false);
      expect(explainValidation(validate.errors!, undefined, body)).toMatchObject({ param, message });
    }
  });
});
