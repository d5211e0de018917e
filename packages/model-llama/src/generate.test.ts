import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { LlamaEngine } from './engine.js';

const modelDir = fileURLToPath(new URL('../../../models/tiny-retrieval', import.meta.url));

describe('generation', async () => {
  const engine = await LlamaEngine.load(modelDir, new ReferenceBackend());
  const c = golden.cases[0];
  const plan = { policy: 'arkvale' as const, pageSize: 4, budgetTokens: 16, sinkPages: 1, windowPages: 1, fullLayers: 0 };

  it('streams exactly the final text, never text a stop string cuts', () => {
    // " our lake. The clever farmer described their sweet bridge. ..." : stop inside the second sentence.
    const chunks: string[] = [];
    const r = engine.generate([{ promptIds: c.ids, maxTokens: 32, stop: ['clever farmer'], onText: (t) => chunks.push(t) }], plan);
    expect(r.outputs[0]).toMatchObject({ text: ' our lake. The ', finishReason: 'stop' });
    expect(chunks.join('')).toBe(' our lake. The ');
    expect(chunks.length).toBeGreaterThan(1);
  });

  it('stops at max tokens and at end of sequence, and frees every page', () => {
    const r = engine.generate([{ promptIds: c.ids, maxTokens: 5, ignoreEos: true }], plan);
    expect(r.outputs[0].tokenIds).toEqual(c.greedy.slice(0, 5));
    expect(r.outputs[0].finishReason).toBe('length');
    // The golden passkey answer ends with </s>: generation stops there, without it.
    const passkey = golden.cases[1];
    const answer = engine.generate([{ promptIds: passkey.ids, maxTokens: 12 }], { policy: 'full', pageSize: 16 });
    expect(answer.outputs[0].finishReason).toBe('eos');
    expect(answer.outputs[0].tokenIds).toEqual(passkey.greedy.slice(0, passkey.greedy.indexOf(2)));
  }, 120_000);

  it('samples reproducibly from a seed and differently from another', () => {
    const run = (seed: number) => engine.generate([{ promptIds: c.ids, maxTokens: 16, temperature: 1.2, seed, ignoreEos: true }], plan).outputs[0].tokenIds;
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
  });

  it('rejects bad sampling options with a clear error', () => {
    expect(() => engine.generate([{ promptIds: c.ids, temperature: -1 }], plan)).toThrow(/temperature must be a number >= 0/);
    expect(() => engine.generate([{ promptIds: c.ids, topP: 0 }], plan)).toThrow(/top-p must be in \(0, 1\]/);
    expect(() => engine.generate([{ promptIds: [] }], plan)).toThrow(/at least one token/);
  });
});
