import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoPageLeak, startServer, type TestServer } from './test-support/fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('responsiveness', () => {
  let t: TestServer;
  beforeAll(async () => (t = await startServer({ devicePages: 2600, hostPages: 4096, chunkTokens: 512 })));
  afterAll(() => t?.stop());

  it('/health answers within 100 ms while an 8k-token prompt is prefilled', async () => {
    const prompt = Array.from({ length: 8000 }, (_, i) => 10 + ((i * 7919) % 800));
    const controller = new AbortController();
    const long = fetch(`${t.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-retrieval', prompt, max_tokens: 1, temperature: 0, stream: true }),
      signal: controller.signal,
    }).catch(() => null);
    for (let i = 0; i < 200 && (await t.engine.stats()).prefilling === 0; i++) await sleep(10);
    // Probe for 1.5 s, 20 ms apart, while the prefill runs (it takes several seconds here),
    // then hang up: that aborts the request mid-prefill and frees its pages.
    const latencies: number[] = [];
    const until = performance.now() + 1500;
    while (performance.now() < until && latencies.length < 200) {
      const t0 = performance.now();
      const res = await fetch(`${t.url}/health`);
      latencies.push(performance.now() - t0);
      expect(res.status).toBe(200);
      await sleep(20);
    }
    const during = await t.engine.stats();
    expect(during.prefilling).toBe(1);
    expect(during.prefillTokens).toBeGreaterThan(0);
    expect(during.prefillTokens).toBeLessThan(8000);
    controller.abort();
    await long;
    for (let i = 0; i < 300 && (await t.engine.stats()).sequences > 0; i++) await sleep(10);
    const stats = await t.engine.stats();
    expect(stats).toMatchObject({ sequences: 0, aborted: 1 });
    expectNoPageLeak(stats);
    expect(latencies.length).toBeGreaterThan(20);
    // The limit is 100 ms; the engine's worker keeps this thread free, so probes take a few ms.
    expect(Math.max(...latencies)).toBeLessThan(100);
  }, 30_000);
});
