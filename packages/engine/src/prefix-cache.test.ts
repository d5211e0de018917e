import { seededUniform as rng } from '@arkvale/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine } from './local-engine.js';
import type { EngineRequest, EngineStats, Usage } from './types.js';
import { MODEL_DIR } from './test-support/model.js';

/*
 * The prefix cache through the engine, on the bundled model: a prompt that starts with
 * the tokens of an earlier request starts from its pages, prefills only the rest, and
 * generates exactly what it generates with the cache off.
 */

const PAGE = 8;

async function run(engine: LocalEngine, req: EngineRequest): Promise<{ ids: number[]; usage: Usage }> {
  const ids: number[] = [];
  for await (const ev of engine.submit({ temperature: 0, ignoreEos: true, ...req })) {
    if (ev.type === 'token') ids.push(ev.tokenId);
    else return { ids, usage: ev.usage };
  }
  throw new Error('the stream ended without a done event');
}

const randomIds = (next: () => number, n: number) => Array.from({ length: n }, () => 3 + Math.floor(next() * 800));

/** Every slot still in use is one that only the prefix cache holds. */
function expectOnlyCached(s: EngineStats): void {
  expect(s).toMatchObject({ sequences: 0, running: 0, failed: 0 });
  expect(s.devicePages.used).toBe(s.devicePages.cached);
  expect(s.hostPages.used).toBe(s.hostPages.cached);
}

describe('prefix cache (engine)', () => {
  let engine: LocalEngine;
  beforeAll(
    async () => (engine = await LocalEngine.load({ modelDir: MODEL_DIR, pageSize: PAGE, devicePages: 400, hostPages: 800, budgetTokens: 32, chunkTokens: 64 })),
  );
  afterAll(() => engine?.close());

  for (const policy of ['full', 'quest', 'arkvale'] as const) {
    it(`${policy}: questions on one document start from its pages and answer exactly as with the cache off`, async () => {
      const next = rng(policy.length);
      const doc = randomIds(next, 90);
      for (let q = 0; q < 3; q++) {
        const prompt = [...doc, ...randomIds(next, 13)];
        const before = await engine.stats();
        const cached = await run(engine, { prompt, maxTokens: 10, kvPolicy: policy });
        const mid = await engine.stats();
        const plain = await run(engine, { prompt, maxTokens: 10, kvPolicy: policy, cachePrefix: false });
        expect(cached.ids).toEqual(plain.ids);
        expect(plain.usage.cachedTokens).toBe(0);
        // The document's whole pages (the page it shares with the question is not the same page).
        const expected = q === 0 ? 0 : Math.floor(doc.length / PAGE) * PAGE;
        expect(cached.usage).toEqual({ promptTokens: prompt.length, completionTokens: 10, cachedTokens: expected });
        expect(mid.prefillTokens - before.prefillTokens).toBe(prompt.length - expected);
      }
      expectOnlyCached(await engine.stats());
    });

    it(`${policy}: each chat turn prefills only its new tokens`, async () => {
      // The cached turn's answer was decoded a token at a time, where the uncached run
      // prefills it in one pass: the same K/V up to rounding, so the tokens may differ
      // where two candidates tie to within rounding. Its hits and prefill are exact.
      const next = rng(100 + policy.length);
      let prompt = randomIds(next, 90);
      let previous = 0;
      for (let turn = 1; turn <= 3; turn++) {
        const before = await engine.stats();
        const answer = await run(engine, { prompt, maxTokens: 10, kvPolicy: policy });
        const after = await engine.stats();
        // The last turn's KV (its prompt and all but its last token) in whole pages.
        const expected = turn === 1 ? 0 : Math.floor((previous - 1) / PAGE) * PAGE;
        expect(answer.usage.cachedTokens).toBe(expected);
        expect(after.prefillTokens - before.prefillTokens).toBe(prompt.length - expected);
        previous = prompt.length + answer.ids.length;
        prompt = [...prompt, ...answer.ids, ...randomIds(next, 13)];
      }
    });
  }

  it('a request with cachePrefix: false neither starts from the cache nor leaves its pages there', async () => {
    const prompt = randomIds(rng(9), 70);
    const before = await engine.stats();
    await run(engine, { prompt, maxTokens: 4, cachePrefix: false });
    const again = await run(engine, { prompt, maxTokens: 4 });
    expect(again.usage.cachedTokens).toBe(0);
    const after = await engine.stats();
    // Only the second request was looked up.
    expect(after.prefixCache.queries - before.prefixCache.queries).toBe(1);
    expect(after.prefixCache.pages - before.prefixCache.pages).toBe(Math.floor((70 + 3) / PAGE));
    await expect(run(engine, { prompt, maxTokens: 4, cachePrefix: 'yes' as never })).rejects.toThrow(/cache_prefix must be a boolean/);
  });

  it('under pressure gives cached pages back oldest first, and running requests keep theirs', async () => {
    // 90 device pages: a 120-token prompt holds 15 pages in each of the 4 layers while it
    // prefills, and keeps 15 in each full layer and 4 in each budgeted one.
    const small = await LocalEngine.load({ modelDir: MODEL_DIR, pageSize: PAGE, devicePages: 90, hostPages: 400, budgetTokens: 32, chunkTokens: 64 });
    try {
      const next = rng(21);
      const prompts = [0, 1, 2, 3].map(() => randomIds(next, 120));
      const alone = [];
      for (const prompt of prompts) alone.push((await run(small, { prompt, maxTokens: 8, cachePrefix: false })).ids);
      for (const prompt of prompts) await run(small, { prompt, maxTokens: 8 });
      const filled = await small.stats();
      // Four prompts' pages do not fit beside each other: the oldest went first.
      expect(filled.prefixCache.pages).toBeGreaterThan(0);
      expect(filled.devicePages.cached).toBeLessThanOrEqual(90);
      const newest = await run(small, { prompt: prompts[3], maxTokens: 8 });
      const oldest = await run(small, { prompt: prompts[0], maxTokens: 8 });
      expect(newest.usage.cachedTokens).toBe(112);
      expect(oldest.usage.cachedTokens).toBeLessThan(112);
      expect(oldest.ids).toEqual(alone[0]);
      // Three at once, all starting from cached pages or not: the same tokens as alone.
      const together = await Promise.all(prompts.slice(1).map((prompt) => run(small, { prompt, maxTokens: 8 })));
      expect(together.map((r) => r.ids)).toEqual(alone.slice(1));
      expect([newest.ids]).toEqual([alone[3]]);
      expectOnlyCached(await small.stats());
    } finally {
      await small.close();
    }
  });

  it('an engine with prefixCache: false prefills every prompt', async () => {
    const off = await LocalEngine.load({ modelDir: MODEL_DIR, pageSize: PAGE, devicePages: 200, hostPages: 400, prefixCache: false });
    try {
      const prompt = randomIds(rng(5), 50);
      await run(off, { prompt, maxTokens: 4 });
      const again = await run(off, { prompt, maxTokens: 4 });
      expect(again.usage.cachedTokens).toBe(0);
      const s = await off.stats();
      expect(s.prefixCache).toMatchObject({ queries: 0, pages: 0 });
      expect(s.devicePages.used).toBe(0);
    } finally {
      await off.close();
    }
  });
});
