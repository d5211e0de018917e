import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine } from './local-engine.js';
import type { EngineRequest } from './types.js';
import { MODEL_DIR } from './test-support/model.js';

/*
 * n choices of one prompt (sharePromptWith): the first prefills the prompt, the others
 * fork its sequence, sampling with their own seeds: each must generate exactly what a
 * separate request with its seed generates.
 */

async function tokens(_engine: LocalEngine, handle: AsyncIterable<{ type: string; tokenId?: number }>): Promise<number[]> {
  const ids: number[] = [];
  for await (const ev of handle) if (ev.type === 'token') ids.push(ev.tokenId!);
  return ids;
}

describe('sharing a prompt between requests (n choices)', () => {
  let engine: LocalEngine;
  beforeAll(async () => (engine = await LocalEngine.load({ modelDir: MODEL_DIR, pageSize: 8, devicePages: 400, hostPages: 800, budgetTokens: 32 })));
  afterAll(() => engine?.close());

  for (const policy of ['full', 'arkvale'] as const) {
    it(`${policy}: forks the prefilled prompt, and each choice samples as a separate request with its seed`, async () => {
      const base: EngineRequest = {
        prompt: 'Once upon a time in a small village there lived a farmer who painted the old barn',
        maxTokens: 24,
        temperature: 1,
        ignoreEos: true,
        kvPolicy: policy,
        cachePrefix: false,
      };
      const alone: number[][] = [];
      for (let j = 0; j < 3; j++) alone.push(await tokens(engine, engine.submit({ ...base, seed: 40 + j })));
      expect(new Set(alone.map((a) => a.join())).size).toBeGreaterThan(1);
      const before = await engine.stats();
      const first = engine.submit({ ...base, seed: 40 });
      const others = [1, 2].map((j) => engine.submit({ ...base, seed: 40 + j, sharePromptWith: first.id }));
      const together = await Promise.all([first, ...others].map((h) => tokens(engine, h)));
      const after = await engine.stats();
      expect(together).toEqual(alone);
      expect(after.forks - before.forks).toBe(2);
      // The prompt ran through the model once.
      expect(after.prefillTokens - before.prefillTokens).toBe(first.promptTokens);
      expect(after).toMatchObject({ sequences: 0, devicePages: { used: 0 } });
    });
  }

  it('prefills alone when the request it names is gone or has another prompt', async () => {
    const base: EngineRequest = { prompt: 'The old farmer painted', maxTokens: 4, temperature: 0, cachePrefix: false };
    const before = await engine.stats();
    const other = engine.submit({ ...base, prompt: 'A different prompt entirely' });
    const follower = engine.submit({ ...base, sharePromptWith: other.id });
    const orphan = engine.submit({ ...base, sharePromptWith: 'no-such-request' });
    const [, a, b] = await Promise.all([other, follower, orphan].map((h) => tokens(engine, h)));
    expect(a).toEqual(b);
    expect((await engine.stats()).forks).toBe(before.forks);
    expect(() => engine.submit({ ...base, sharePromptWith: '' })).toThrow(/sharePromptWith/);
  });
});
