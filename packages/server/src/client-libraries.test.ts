import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, streamText } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startServer, type TestServer } from './test-support/fixtures.js';

/*
 * The server driven by the TypeScript clients people build on, beyond the `openai`
 * package: the Vercel AI SDK (through its OpenAI-compatible provider) and LangChain.js.
 * Each call must complete, streaming included, with what the server generated.
 */

describe('client libraries against the server', () => {
  let t: TestServer;
  beforeAll(async () => (t = await startServer()));
  afterAll(() => t?.stop());

  const provider = () => createOpenAICompatible({ name: 'arkvale', baseURL: `${t.url}/v1`, supportsStructuredOutputs: true });

  it('Vercel AI SDK: generateText and streamText give the same greedy text', async () => {
    const model = provider().chatModel('tiny-retrieval');
    const prompt = 'The pass key is 4242. What is the pass key?';
    const whole = await generateText({ model, prompt, temperature: 0, maxOutputTokens: 12 });
    expect(whole.text.length).toBeGreaterThan(0);
    expect(whole.usage.outputTokens).toBeGreaterThan(0);
    expect(whole.usage.outputTokens).toBeLessThanOrEqual(12);
    const stream = streamText({ model, prompt, temperature: 0, maxOutputTokens: 12 });
    let text = '';
    for await (const part of stream.textStream) text += part;
    expect(text).toBe(whole.text);
  });

  it('Vercel AI SDK: generateObject with a zod schema returns an object the schema accepts', async () => {
    const model = provider().chatModel('tiny-retrieval');
    const schema = z.object({ color: z.enum(['red', 'green', 'blue']), ok: z.boolean() });
    const { object } = await generateObject({ model, schema, prompt: 'Pick a color.', temperature: 1, seed: 3, maxOutputTokens: 48 });
    expect(schema.parse(object)).toEqual(object);
  });

  it('LangChain.js: invoke and stream', async () => {
    const chat = new ChatOpenAI({ model: 'tiny-retrieval', apiKey: 'none', configuration: { baseURL: `${t.url}/v1` }, temperature: 0, maxTokens: 10 });
    const message = await chat.invoke('The old farmer painted');
    expect(typeof message.content).toBe('string');
    expect((message.content as string).length).toBeGreaterThan(0);
    let streamed = '';
    for await (const chunk of await chat.stream('The old farmer painted')) streamed += chunk.content as string;
    expect(streamed).toBe(message.content);
  });
});
