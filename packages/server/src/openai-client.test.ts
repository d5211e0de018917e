import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoPageLeak, metric, startServer, type TestServer } from './test-support/fixtures.js';

describe('the OpenAI routes through the official client', () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startServer({ apiKey: 'sekrit' });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'sekrit', maxRetries: 0, timeout: 10_000 });
  });
  afterAll(() => t?.stop());

  it('lists the model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny-retrieval']);
    expect((await client.models.retrieve('tiny-retrieval')).id).toBe('tiny-retrieval');
  });

  it('completes, streaming and not, with the same text (greedy)', async () => {
    const body = { model: 'tiny-retrieval', prompt: 'The old farmer painted', max_tokens: 8, temperature: 0 };
    const whole = await client.completions.create(body);
    expect(whole.object).toBe('text_completion');
    expect(whole.choices[0].finish_reason).toBe('length');
    expect(whole.usage).toMatchObject({ completion_tokens: 8, total_tokens: whole.usage!.prompt_tokens + 8 });
    const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: unknown = null;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        finish ??= c.finish_reason;
      }
    }
    expect(text).toBe(whole.choices[0].text);
    expect(finish).toBe('length');
    expect(usage).toEqual(whole.usage);
  });

  it('chats on a model without a template (plain fallback), streaming and not', async () => {
    const body = {
      model: 'tiny-retrieval',
      messages: [{ role: 'user' as const, content: 'The pass key is 4242. What is the pass key?' }],
      max_tokens: 6,
      temperature: 0,
      kv_policy: 'quest',
    };
    const whole = await client.chat.completions.create(body as never);
    expect(whole.object).toBe('chat.completion');
    expect(whole.choices[0].message.role).toBe('assistant');
    const stream = (await client.chat.completions.create({ ...body, stream: true } as never)) as unknown as AsyncIterable<{
      choices: { delta: { role?: string; content?: string | null } }[];
    }>;
    let text = '';
    let role: string | undefined;
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(role).toBe('assistant');
    expect(text).toBe(whole.choices[0].message.content);
  });

  it('aborts a stream with an AbortController, freeing its pages', async () => {
    const controller = new AbortController();
    const stream = await client.completions.create(
      { model: 'tiny-retrieval', prompt: 'Once upon a time', max_tokens: 2000, temperature: 0, ignore_eos: true, stream: true } as never,
      { signal: controller.signal },
    );
    let chunks = 0;
    // The client ends the iteration (quietly or with an abort error) and drops the connection.
    await (async () => {
      for await (const _ of stream as unknown as AsyncIterable<unknown>) if (++chunks === 3) controller.abort();
    })().catch(() => undefined);
    expect(chunks).toBeLessThan(10);
    for (let i = 0; i < 100 && (await t.engine.stats()).sequences > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const stats = await t.engine.stats();
    // What is still in use is only the prefix cache's (the aborted request's prompt pages).
    expect(stats).toMatchObject({ sequences: 0, running: 0 });
    expectNoPageLeak(stats);
    expect(stats.aborted).toBeGreaterThanOrEqual(1);
  });

  it('reports prompt tokens taken from the prefix cache as usage.prompt_tokens_details.cached_tokens', async () => {
    const document = Array.from({ length: 200 }, (_, i) => 3 + ((i * 37) % 800));
    const ask = (question: number[], extra: object = {}) =>
      client.completions.create({ model: 'tiny-retrieval', prompt: [...document, ...question], max_tokens: 4, temperature: 0, ...extra } as never);
    const first = await ask([11, 12, 13]);
    const second = await ask([21, 22, 23]);
    const off = await ask([21, 22, 23], { cache_prefix: false });
    // The document's whole pages (16 tokens each) are not prefilled again.
    expect(second.usage).toMatchObject({ prompt_tokens: 203, prompt_tokens_details: { cached_tokens: 192 } });
    expect(off.usage).toMatchObject({ prompt_tokens_details: { cached_tokens: 0 } });
    expect(first.usage).toMatchObject({ prompt_tokens_details: { cached_tokens: expect.any(Number) } });
    expect(second.choices[0].text).toBe(off.choices[0].text);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metric(metrics, 'arkvale:prefix_cache_hits_total')).toBeGreaterThanOrEqual(192);
    expect(metric(metrics, 'arkvale:prefix_cache_device_pages')).toBeGreaterThan(0);
    await expect(ask([1], { cache_prefix: 'no' })).rejects.toMatchObject({ status: 400, param: 'cache_prefix' });
  });

  it('returns the token ids with return_token_ids (as vLLM does), whole and streamed', async () => {
    const body = { model: 'tiny-retrieval', prompt: 'The old farmer painted', max_tokens: 5, temperature: 0, return_token_ids: true };
    const whole = (await client.completions.create(body as never)) as unknown as { choices: { token_ids: number[] }[] };
    expect(whole.choices[0].token_ids).toHaveLength(5);
    const stream = (await client.completions.create({ ...body, stream: true } as never)) as unknown as AsyncIterable<{ choices: { token_ids?: number[] }[] }>;
    const streamed: number[] = [];
    for await (const chunk of stream) for (const c of chunk.choices) streamed.push(...(c.token_ids ?? []));
    expect(streamed).toEqual(whole.choices[0].token_ids);
    const plain = (await client.completions.create({ ...body, return_token_ids: undefined } as never)) as unknown as { choices: object[] };
    expect(plain.choices[0]).not.toHaveProperty('token_ids');
  });

  it('n choices fork one prefilled prompt, each as a separate request with seed + its index (completions and chat)', async () => {
    const body = { model: 'tiny-retrieval', prompt: 'Once upon a time in a small village', max_tokens: 12, temperature: 1, seed: 7 };
    const before = await t.engine.stats();
    const res = await client.completions.create({ ...body, n: 3 });
    expect((await t.engine.stats()).forks - before.forks).toBe(2);
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of res.choices) {
      const alone = await client.completions.create({ ...body, seed: 7 + c.index });
      expect(c.text).toBe(alone.choices[0].text);
    }
    expect(res.usage).toMatchObject({ completion_tokens: 36 });
    // Streamed, each chunk names its choice; a batch of two prompts with n 2 gives indices 0-3.
    const stream = await client.completions.create({ ...body, prompt: ['Once upon a time', 'The old farmer'], n: 2, stream: true });
    const texts = ['', '', '', ''];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts.every((x) => x.length > 0)).toBe(true);
    const chat = await client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 6,
      temperature: 1,
      seed: 3,
      n: 2,
    });
    expect(chat.choices.map((c) => c.index)).toEqual([0, 1]);
    const second = await client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 6,
      temperature: 1,
      seed: 4,
    });
    expect(chat.choices[1].message.content).toBe(second.choices[0].message.content);
  });

  it('refuses a wrong key (401) and an unknown model (404) in OpenAI shape', async () => {
    const bad = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    await expect(client.completions.create({ model: 'gpt-9', prompt: 'x', max_tokens: 2 })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
      param: 'model',
    });
    await expect(client.completions.create({ model: 'tiny-retrieval', prompt: 'x', max_tokens: 40_000 })).rejects.toMatchObject({
      status: 400,
      code: 'context_length_exceeded',
    });
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metric(metrics, 'arkvale:num_requests_running')).toBe(0);
    expect(metrics).toContain('arkvale:time_to_first_token_seconds_bucket');
  });
});
