import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine } from './local-engine.js';
import type { EngineRequest } from './types.js';
import { MODEL_DIR } from './test-support/model.js';

async function text(engine: LocalEngine, req: EngineRequest): Promise<string> {
  let out = '';
  for await (const ev of engine.submit(req)) out += ev.text;
  return out;
}

describe('park and recall', () => {
  let engine: LocalEngine;
  // A device pool too small for two Full sequences to run to the end side by side.
  beforeAll(
    async () =>
      (engine = await LocalEngine.load({
        modelDir: MODEL_DIR,
        pageSize: 8,
        devicePages: 80,
        hostPages: 400,
        policy: 'arkvale',
        budgetTokens: 32,
        chunkTokens: 64,
      })),
  );
  afterAll(() => engine?.close());

  it('parks a running sequence when the pool runs short and resumes it by recall, unrecomputed, with its text alone', async () => {
    const long: EngineRequest = { prompt: 'The old farmer painted the barn and then the', maxTokens: 90, temperature: 0, ignoreEos: true, kvPolicy: 'full' };
    const other: EngineRequest = {
      prompt: 'Once upon a time in a small village there lived a',
      maxTokens: 90,
      temperature: 0,
      ignoreEos: true,
      kvPolicy: 'full',
    };
    const [aloneA, aloneB] = [await text(engine, long), await text(engine, other)];
    const before = await engine.stats();
    const [a, b] = await Promise.all([text(engine, long), text(engine, other)]);
    const after = await engine.stats();
    expect(after.parks).toBeGreaterThan(before.parks);
    expect(after.resumes).toBe(after.parks);
    // Resumed by recall: no prompt token ran through the model again (those the prefix cache held did not run at all).
    const cached = after.prefixCache.hitTokens - before.prefixCache.hitTokens;
    expect(after.prefillTokens - before.prefillTokens).toBe(after.promptTokens - before.promptTokens - cached);
    expect(after.caches.find((c) => c.plan === 'full@32')!.kv.resumedPages).toBeGreaterThan(0);
    expect([a, b]).toEqual([aloneA, aloneB]);
    // Every page left is one only the prefix cache holds.
    expect(after).toMatchObject({ sequences: 0, parked: 0, failed: 0 });
    expect(after.devicePages.used).toBe(after.devicePages.cached);
    expect(after.hostPages.used).toBe(after.hostPages.cached);
  });
});
