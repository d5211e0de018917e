import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoPageLeak, metric, startServer, type TestServer } from './test-support/fixtures.js';

const PROMPTS = [
  'The',
  'The old farmer painted',
  'Once upon a time in a small village there lived a',
  'A happy dog ran to the river and',
  'The pass key is 74820. Remember it. The pass key is',
  'Their silver castle watched the tired boat.',
  'My yellow mountain',
  'In the morning the clever farmer described their sweet bridge. Then the tired boat watched the castle and',
];
const POLICIES = [
  { kv_policy: 'arkvale', kv_budget: 48 },
  { kv_policy: 'full' },
  { kv_policy: 'h2o', kv_budget: 48 },
  { kv_policy: 'streaming-llm', kv_budget: 48 },
];

describe('load on loopback', () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    // Prompt chunks of 8 tokens, so that the longer prompts take several steps. Few tokens in
    // all: this is about correctness under concurrency (a 64-row step costs ~100 ms here).
    t = await startServer({ chunkTokens: 8, stepTokens: 64 });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 20_000 });
  });
  afterAll(() => t?.stop());

  const body = (i: number) => ({
    model: 'tiny-retrieval',
    prompt: PROMPTS[i % 8],
    max_tokens: 2 + (i % 3),
    temperature: 0,
    ...POLICIES[Math.floor(i / 8) % 4],
  });

  async function streamed(i: number): Promise<string> {
    const stream = await client.completions.create({ ...body(i), stream: true } as never);
    let text = '';
    for await (const chunk of stream as unknown as AsyncIterable<{ choices: { text: string }[] }>) text += chunk.choices[0]?.text ?? '';
    return text;
  }

  it('64 concurrent streaming clients, 256 requests: each gets its text alone; no page leaks', async () => {
    // Alone: each of the 32 distinct requests, one at a time, through the same server.
    const alone: string[] = [];
    for (let i = 0; i < 32; i++) alone.push(await streamed(i));
    expect(alone.every((s) => s.length > 0)).toBe(true);

    let next = 0;
    const got: string[] = new Array(256);
    const clients = Array.from({ length: 64 }, async () => {
      for (let i = next++; i < 256; i = next++) got[i] = await streamed(i % 32);
    });
    await Promise.all(clients);
    const wrong = got.flatMap((text, i) => (text === alone[i % 32] ? [] : [{ i, text, alone: alone[i % 32] }]));
    expect(wrong).toEqual([]);

    const stats = await t.engine.stats();
    expect(stats).toMatchObject({
      waiting: 0,
      running: 0,
      parked: 0,
      sequences: 0,
      failed: 0,
    });
    expectNoPageLeak(stats);
    expect(stats.finished).toBe(256 + 32);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metric(metrics, 'arkvale:kv_device_pages_used')).toBe(stats.devicePages.cached);
    expect(metric(metrics, 'arkvale:kv_host_pages_used')).toBe(stats.hostPages.cached);
    expect(metric(metrics, 'arkvale:num_requests_running')).toBe(0);
    expect(metric(metrics, 'arkvale:num_requests_waiting')).toBe(0);
    expect(metric(metrics, 'arkvale:generation_tokens_total')).toBe(stats.generationTokens);
  }, 90_000);
});
