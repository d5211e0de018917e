import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoPageLeak, startServer, type TestServer } from './test-support/fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const M = 'tiny-retrieval';
const json = (v: unknown) => JSON.stringify(v);
const invalidUtf8 = Buffer.concat([Buffer.from('{"model":"tiny-retrieval","prompt":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);

/** Malformed or hostile bodies for POST /v1/completions (and one chat, and wrong routes). */
const CASES: { path?: string; body: string | Buffer; type?: string; method?: string }[] = [
  { body: '{"model": "tiny-retrieval", "prompt": ' },
  { body: 'not json at all' },
  { body: '' },
  { body: json({ model: M, prompt: 'x', max_tokens: '5' }) },
  { body: json({ model: M }) },
  { body: json({ prompt: 'x' }) },
  { body: json({ model: M, prompt: 'x', max_tokens: -3 }) },
  { body: json({ model: M, prompt: 'x', max_tokens: 1e12 }) },
  { body: json({ model: M, prompt: Array.from({ length: 33000 }, () => 5), max_tokens: 1 }) },
  { body: json({ model: 'gpt-4o', prompt: 'x' }) },
  { path: '/v1/chat/completions', body: json({ model: M, messages: [] }) },
  { path: '/v1/chat/completions', body: json({ model: M, messages: [{ role: 'wizard', content: 'x' }] }) },
  { body: invalidUtf8 },
  { body: json({ model: M, prompt: 'x', kv_policy: 'lru' }) },
  { body: json({ model: M, prompt: 'x', kv_policy: 'arkvale', kv_budget: 1 }) },
  { body: json({ model: M, prompt: 'x', temperature: -1 }) },
  { body: json({ model: M, prompt: 'x', n: 17 }) },
  { body: json({ model: M, prompt: [-1] }) },
  { body: json({ model: M, prompt: [999999] }) },
  { body: '{"__proto__": {"polluted": true}, "model": "tiny-retrieval", "prompt": "x"}' },
  { body: json({ model: M, prompt: 'x' }), type: 'text/plain' },
  { path: '/v1/nothing-here', body: json({}) },
  { path: '/v2/completions', body: json({}) },
  { body: json([1, 2, 3]) },
];

describe('malformed and hostile requests', () => {
  let t: TestServer;
  beforeAll(async () => (t = await startServer()));
  afterAll(() => t?.stop());

  it('1,000 of them: each a 4xx in OpenAI shape or a clean end of stream; no page leaks; still serving', async () => {
    const outcomes: number[] = [];
    const send = async (i: number): Promise<void> => {
      if (i % 50 === 7) {
        // A 10 MB body.
        const res = await fetch(`${t.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: json({ model: M, prompt: 'x'.repeat(10 << 20) }),
        });
        outcomes.push(res.status);
        expect(res.status).toBe(413);
        expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
        return;
      }
      if (i % 25 === 3 || i % 25 === 4) {
        // A client that hangs up mid-stream (after its first chunk) or mid-prefill (a long prompt, at once).
        const midPrefill = i % 25 === 4;
        const controller = new AbortController();
        const prompt = midPrefill ? Array.from({ length: 1500 }, (_, k) => 10 + (k % 700)) : 'The old farmer painted';
        try {
          const res = await fetch(`${t.url}/v1/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: json({ model: M, prompt, max_tokens: 500, ignore_eos: true, temperature: 0, stream: true }),
            signal: controller.signal,
          });
          if (midPrefill) controller.abort();
          else
            await res
              .body!.getReader()
              .read()
              .then(() => controller.abort());
        } catch {
          // aborted
        }
        outcomes.push(499);
        return;
      }
      const c = CASES[i % CASES.length];
      const res = await fetch(`${t.url}${c.path ?? '/v1/completions'}`, {
        method: 'POST',
        headers: { 'content-type': c.type ?? 'application/json' },
        body: c.body,
      });
      outcomes.push(res.status);
      expect(res.status, `case ${i % CASES.length}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `case ${i % CASES.length}`).toBeLessThan(500);
      const body = (await res.json()) as { error: { message: string; type: string; param: unknown; code: unknown } };
      expect(typeof body.error.message).toBe('string');
      expect(typeof body.error.type).toBe('string');
      expect('param' in body.error && 'code' in body.error).toBe(true);
    };
    // Bounded: 1,000 requests, 16 at a time.
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < 1000; i = next++) await send(i);
      }),
    );
    expect(outcomes.length).toBe(1000);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    for (let i = 0; i < 500 && (await t.engine.stats()).sequences > 0; i++) await sleep(10);
    const stats = await t.engine.stats();
    expect(stats).toMatchObject({
      sequences: 0,
      running: 0,
      waiting: 0,
      failed: 0,
    });
    expectNoPageLeak(stats);
    expect(stats.aborted).toBe(80);
    const ok = await fetch(`${t.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: json({ model: M, prompt: 'The', max_tokens: 2, temperature: 0 }),
    });
    expect(ok.status).toBe(200);
  }, 90_000);
});
