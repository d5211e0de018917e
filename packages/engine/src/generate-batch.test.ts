import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { LlamaEngine } from '@arkvale/model-llama';
import type { StepReport } from './engine-core.js';
import { BatchRun, generateBatch, type GenerationRequest } from './generate-batch.js';

const modelDir = fileURLToPath(new URL('../../../models/tiny-retrieval', import.meta.url));

describe('generateBatch (the offline face)', async () => {
  const model = await LlamaEngine.load(modelDir, new ReferenceBackend());
  const engine = { generate: (requests: readonly GenerationRequest[], plan: Parameters<typeof generateBatch>[2]) => generateBatch(model, requests, plan) };
  // Long prompts run on the CPU backend, which reproduces golden.json in full (forward.golden.test.ts).
  const cpu = await LlamaEngine.load(modelDir, new CpuBackend());
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
    const answer = generateBatch(cpu, [{ promptIds: passkey.ids, maxTokens: 12 }], { policy: 'full', pageSize: 16 });
    expect(answer.outputs[0].finishReason).toBe('eos');
    expect(answer.outputs[0].tokenIds).toEqual(passkey.greedy.slice(0, passkey.greedy.indexOf(2)));
    // Statistics from when the last sequence ended: its pages were still held.
    expect(answer.kv.sequences).toBe(1);
  }, 30_000);

  it('feeds a suffix token by token: under Full the same tokens as a prompt that includes it', () => {
    // Decode steps over the fed suffix see what a longer prefill would have seen.
    const r = engine.generate([{ promptIds: c.ids.slice(0, 2), suffixIds: c.ids.slice(2), maxTokens: 12, ignoreEos: true }], { policy: 'full', pageSize: 4 });
    expect(r.outputs[0].tokenIds).toEqual(c.greedy.slice(0, 12));
    expect(r.outputs[0].promptTokens).toBe(2);
    expect(r.timings).toMatchObject({ promptTokens: 2, suffixTokens: c.ids.length - 2, generatedTokens: 12 });
    // One decode step per suffix token and per generated token but the last.
    expect(r.timings.decodeSteps).toBe(c.ids.length - 2 + 11);
    expect(r.timings.sequenceSteps).toBe(r.timings.decodeSteps);
    expect(r.timings.suffixMs).toBeGreaterThan(0);
  });

  it('batches rows with and without a suffix, each as it runs alone', () => {
    const plain: GenerationRequest = { promptIds: c.ids, maxTokens: 5, ignoreEos: true };
    const fed: GenerationRequest = { promptIds: c.ids.slice(0, 3), suffixIds: c.ids.slice(3), maxTokens: 7, ignoreEos: true, temperature: 1, seed: 4 };
    const together = engine.generate([plain, fed], plan);
    // Each row samples from its own seed, whatever else is in the batch.
    const alone = [plain, fed].map((r) => engine.generate([r], plan).outputs[0].tokenIds);
    expect(together.outputs.map((o) => o.tokenIds)).toEqual(alone);
    expect(together.timings.sequenceSteps).toBe(4 + (c.ids.length - 3 + 6));
  });

  it('samples reproducibly from a seed and differently from another', () => {
    const run = (seed: number) => engine.generate([{ promptIds: c.ids, maxTokens: 16, temperature: 1.2, seed, ignoreEos: true }], plan).outputs[0].tokenIds;
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
  });

  it('rejects bad sampling options with a clear error', () => {
    expect(() => engine.generate([{ promptIds: c.ids, temperature: -1 }], plan)).toThrow(/temperature must be a number >= 0/);
    expect(() => engine.generate([{ promptIds: c.ids, topP: 0 }], plan)).toThrow(/top-p must be in \(0, 1\]/);
    expect(() => engine.generate([{ promptIds: [] }], plan)).toThrow(/at least one token/);
    expect(() => engine.generate([{ promptIds: c.ids, suffixIds: [5, 9999] }], plan)).toThrow(/token id 9999 is outside the vocabulary \(0\.\.855\)/);
    const tooLong = Array.from({ length: 32768 }, () => 5);
    expect(() => engine.generate([{ promptIds: c.ids, suffixIds: tooLong }], plan)).toThrow(
      /a prompt of 6 tokens and a suffix of 32768 and its first new token exceed/,
    );
  });

  it('Full and ArkVale with a budget that holds everything generate identical tokens', () => {
    const request = { promptIds: golden.cases[0].ids, maxTokens: 24, ignoreEos: true };
    const full = engine.generate([request], { policy: 'full', pageSize: 4 });
    const arkvale = engine.generate([request], { policy: 'arkvale', pageSize: 4, budgetTokens: 64, sinkPages: 1, windowPages: 2 });
    expect(arkvale.outputs[0].tokenIds).toEqual(full.outputs[0].tokenIds);
    expect(full.outputs[0].tokenIds).toEqual(golden.cases[0].greedy.slice(0, 24));
    // Everything fit: nothing was evicted or recalled.
    expect(arkvale.kv.recalls + arkvale.kv.evictions).toBe(0);
  }, 60_000);

  it('batches sequences of different lengths with the same tokens as one at a time', () => {
    const a = { promptIds: golden.cases[0].ids, maxTokens: 6, ignoreEos: true };
    const b = { promptIds: golden.tokenizer[0].ids, maxTokens: 9, ignoreEos: true };
    const plan = { policy: 'arkvale' as const, pageSize: 2, budgetTokens: 8, sinkPages: 1, windowPages: 1, fullLayers: 0 };
    const together = engine.generate([a, b], plan).outputs.map((o) => o.tokenIds);
    const alone = [engine.generate([a], plan).outputs[0].tokenIds, engine.generate([b], plan).outputs[0].tokenIds];
    expect(together).toEqual(alone);
    expect(together.map((t) => t.length)).toEqual([6, 9]);
  }, 60_000);

  it('runs step by step on token ids alone (no tokenizer): the same tokens, no text, stop strings refused', () => {
    const request = { promptIds: c.ids, maxTokens: 8, ignoreEos: true };
    const withText = engine.generate([request], plan).outputs[0];
    const cache = model.createCache(plan, c.ids.length + 8 + 64);
    try {
      const idsOnly = { forward: model.forward, tokenizer: null, eosIds: [] };
      expect(() => new BatchRun(idsOnly, cache, [{ ...request, stop: ['.'] }])).toThrow('stop strings need a tokenizer');
      const run = new BatchRun(idsOnly, cache, [request]);
      const steps: StepReport[] = [];
      while (!run.done) steps.push(run.step());
      run.close();
      expect(steps[0]).toEqual({ prefillTokens: c.ids.length, decodeRows: 0, suffixRows: 0, overlapped: false });
      expect(steps.slice(1).every((s) => s.prefillTokens === 0 && s.decodeRows === 1)).toBe(true);
      const out = run.result({ prefill: 0, suffix: 0, decode: 0 }).outputs[0];
      expect(out).toMatchObject({ text: '', tokenIds: withText.tokenIds, finishReason: 'length' });
      // Every page back in the pool once the run is closed.
      expect(cache.stats()).toMatchObject({ sequences: 0, device: { used: 0 } });
    } finally {
      cache.close();
    }
  });
});
