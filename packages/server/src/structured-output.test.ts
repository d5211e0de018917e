import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './test-support/fixtures.js';

/*
 * response_format through the official client: the output is held to the schema by
 * constrained sampling, so even the bundled 13.5M model, sampling at temperature 1,
 * writes JSON its schema accepts every time.
 */

const schema = {
  type: 'object',
  properties: {
    color: { enum: ['red', 'green', 'blue'] },
    ok: { type: 'boolean' },
    size: { enum: ['small', 'large'] },
  },
  required: ['color', 'ok', 'size'],
  additionalProperties: false,
};

describe('structured output (response_format)', () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startServer();
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 20_000 });
  });
  afterAll(() => t?.stop());

  it('json_schema: 50 answers sampled at temperature 1, each valid under the schema', { timeout: 60_000 }, async () => {
    const validate = new Ajv().compile(schema);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client.chat.completions.create({
          model: 'tiny-retrieval',
          messages: [{ role: 'user', content: `Describe thing ${i} as JSON.` }],
          temperature: 1,
          seed: i,
          max_tokens: 64,
          response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } },
        }),
      ),
    );
    for (const a of answers) {
      expect(a.choices[0].finish_reason).toBe('stop');
      const value = JSON.parse(a.choices[0].message.content!);
      expect(validate(value), JSON.stringify(value)).toBe(true);
    }
    // Sampling, not one fixed answer.
    expect(new Set(answers.map((a) => a.choices[0].message.content)).size).toBeGreaterThan(1);
  });

  it('json_object: the output is a JSON object as far as it goes, streamed too', async () => {
    const stream = await client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [{ role: 'user', content: 'JSON please' }],
      temperature: 0,
      max_tokens: 24,
      response_format: { type: 'json_object' },
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text.startsWith('{')).toBe(true);
  });

  it('refuses a schema the grammar engine cannot compile, naming response_format', async () => {
    await expect(
      client.chat.completions.create({
        model: 'tiny-retrieval',
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: 4,
        response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { type: 'object', properties: { a: { $ref: '#/nowhere' } } } } },
      }),
    ).rejects.toMatchObject({ message: expect.stringMatching(/JSON schema cannot be used/) });
  });
});
