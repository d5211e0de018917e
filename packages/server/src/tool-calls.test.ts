import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './test-support/fixtures.js';

/*
 * Tool calls through the official client, on the bundled model served with a chat
 * template that renders tools (test-support/tools-template.jinja). A required call is
 * held by constrained sampling to a call of one of the tools, its arguments valid under
 * that tool's parameters.
 */

const TEMPLATE = fileURLToPath(new URL('./test-support/tools-template.jinja', import.meta.url));

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { enum: ['Paris', 'Tokyo', 'Lima'] }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
const time = {
  type: 'function' as const,
  function: {
    name: 'get_time',
    parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] } }, required: ['zone'], additionalProperties: false },
  },
};

describe('tool calls', () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startServer({ chatTemplateFile: TEMPLATE });
    // Eight sampled answers share the engine: about 9.5 s alone on a 2-core VM, and past 20 s when another
    // build shared its cores. A request may take as long as the longest test allows.
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 55_000 });
  });
  afterAll(() => t?.stop());

  const ask = (extra: object) =>
    client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      max_tokens: 160,
      temperature: 1,
      tools: [weather, time],
      ...extra,
    } as never) as unknown as Promise<OpenAI.Chat.Completions.ChatCompletion>;

  it('tool_choice required: a call to one of the tools, its arguments valid under its parameters (8 samples)', { timeout: 60_000 }, async () => {
    const valid = { get_weather: new Ajv().compile(weather.function.parameters), get_time: new Ajv().compile(time.function.parameters) };
    const answers = await Promise.all(Array.from({ length: 8 }, (_, seed) => ask({ tool_choice: 'required', seed })));
    for (const res of answers) {
      const choice = res.choices[0];
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.content).toBeNull();
      const call = choice.message.tool_calls![0] as { id: string; type: string; function: { name: 'get_weather' | 'get_time'; arguments: string } };
      expect(call.type).toBe('function');
      expect(call.id).toMatch(/^call_/);
      expect(valid[call.function.name](JSON.parse(call.function.arguments))).toBe(true);
    }
  });

  it('a named function: always that one; streamed as one tool_calls delta', async () => {
    const res = await ask({ tool_choice: { type: 'function', function: { name: 'get_time' } }, seed: 5 });
    expect(res.choices[0].message.tool_calls![0]).toMatchObject({ function: { name: 'get_time' } });
    const stream = await client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [{ role: 'user', content: 'Time?' }],
      max_tokens: 64,
      tools: [weather, time],
      tool_choice: { type: 'function', function: { name: 'get_time' } },
      stream: true,
    });
    const deltas = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      deltas.push(...(chunk.choices[0]?.delta.tool_calls ?? []));
      finish ??= chunk.choices[0]?.finish_reason ?? null;
    }
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_time' } });
    expect(JSON.parse(deltas[0].function!.arguments!)).toHaveProperty('zone');
    expect(finish).toBe('tool_calls');
  });

  it('takes the call and its result back in the next turn, and tool_choice none gives text', async () => {
    const first = await ask({ tool_choice: 'required', seed: 1 });
    const call = first.choices[0].message.tool_calls![0];
    const next = await client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [
        { role: 'user', content: 'What is the weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21}' },
      ],
      max_tokens: 8,
      tools: [weather, time],
      tool_choice: 'none',
    });
    expect(next.choices[0].finish_reason).not.toBe('tool_calls');
    expect(typeof next.choices[0].message.content).toBe('string');
  });

  it('refuses tools where the chat format cannot render them, and a tool_choice that names no tool', async () => {
    await expect(ask({ tool_choice: { type: 'function', function: { name: 'get_stock' } } })).rejects.toMatchObject({ status: 400, param: 'tool_choice' });
    const plain = await startServer();
    try {
      const other = new OpenAI({ baseURL: `${plain.url}/v1`, apiKey: 'none', maxRetries: 0 });
      await expect(
        other.chat.completions.create({ model: 'tiny-retrieval', messages: [{ role: 'user', content: 'x' }], tools: [weather] }),
      ).rejects.toMatchObject({ status: 400, param: 'tools', message: expect.stringMatching(/does not render tools/) });
    } finally {
      await plain.stop();
    }
  });
});
