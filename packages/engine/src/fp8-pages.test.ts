import { ConfigError, ReferenceBackend, pageBytes, type Backend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { LlamaEngine } from '@arkvale/model-llama';
import { beforeAll, describe, expect, it } from 'vitest';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { resolveEngineConfig } from './config.js';
import { generateBatch } from './generate-batch.js';
import { checkKvDtype } from './load-backend.js';
import { LocalEngine } from './local-engine.js';
import { MODEL_DIR } from './test-support/model.js';

/*
 * fp8 KV pages (--kv-dtype fp8) on the bundled model and the CPU backend: decoding
 * attends dequantized pages under Full and ArkVale, and the pass key is still found,
 * ArkVale's included when the question is fed as decode steps after the context
 * (two-phase: the needle's pages must be recalled).
 */

const passkey = golden.cases.find((c) => c.name === 'passkey_1024')!;
const QUESTION = ' What is the pass key? The pass key is';

describe('fp8 KV pages on the bundled model', () => {
  let model: LlamaEngine;
  let question: number;
  beforeAll(async () => {
    model = await LlamaEngine.load(MODEL_DIR, new CpuBackend());
    question = model.model.tokenizer.encode(QUESTION, { addSpecialTokens: false }).length;
    expect(passkey.ids.slice(-question)).toEqual(model.model.tokenizer.encode(QUESTION, { addSpecialTokens: false }));
  });

  it('Full decodes from fp8 pages and answers the pass key', () => {
    const cache = model.createCache({ policy: 'full', pageSize: 16, kvDtype: 'fp8' }, 1100);
    expect(cache.geometry.kvDtype).toBe('fp8');
    expect(cache.stats().device.bytesPerPage).toBe(pageBytes(cache.geometry));
    cache.close();
    const r = generateBatch(model, [{ promptIds: passkey.ids, maxTokens: 8 }], { policy: 'full', pageSize: 16, kvDtype: 'fp8' });
    expect(r.outputs[0].text).toContain(passkey.expected_answer);
    expect(r.kv.device.bytesPerPage).toBe(2 * 2 * 16 * 129);
  });

  it('ArkVale, two-phase: the question fed as decode steps over fp8 pages, the needle recalled, the pass key found', () => {
    const plan = { policy: 'arkvale' as const, budgetTokens: 256, pageSize: 16, kvDtype: 'fp8' as const };
    const r = generateBatch(model, [{ promptIds: passkey.ids.slice(0, -question), suffixIds: passkey.ids.slice(-question), maxTokens: 8 }], plan);
    expect(r.outputs[0].text).toContain(passkey.expected_answer);
    expect(r.kv.recalls).toBeGreaterThan(0);
    expect(r.kv.evictions).toBeGreaterThan(0);
  });

  it('an fp8 engine (ArkVale, chunked prefill over fp8 pages) serves the pass key and says its pages are fp8', async () => {
    const engine = await LocalEngine.load({
      modelDir: MODEL_DIR,
      kvDtype: 'fp8',
      pageSize: 16,
      devicePages: 400,
      hostPages: 800,
      chunkTokens: 256,
      budgetTokens: 256,
    });
    try {
      expect(engine.model.kvDtype).toBe('fp8');
      let text = '';
      for await (const ev of engine.submit({ prompt: passkey.ids, maxTokens: 8, temperature: 0, kvPolicy: 'arkvale' })) text += ev.text;
      expect(text).toContain(passkey.expected_answer);
      expect((await engine.stats()).devicePages.bytesPerPage).toBe(2 * 2 * 16 * 129);
    } finally {
      await engine.close();
    }
  });
});

describe('kvDtype options', () => {
  it('the engine config takes auto (default) or fp8', () => {
    expect(resolveEngineConfig({}).kvDtype).toBe('auto');
    expect(resolveEngineConfig({ kvDtype: 'fp8' }).kvDtype).toBe('fp8');
    expect(() => resolveEngineConfig({ kvDtype: 'int4' as 'fp8' })).toThrow('engine option kvDtype must be one of "auto", "fp8", got int4');
  });

  it("checkKvDtype passes the backend's own refusal on, before any weight loads", () => {
    checkKvDtype(new ReferenceBackend(), 'fp8');
    const asked: string[] = [];
    const refusing = {
      dtype: 'f16',
      createKvStorage: () => {
        asked.push('create');
        throw new ConfigError('--kv-dtype fp8 is not supported on the CUDA backend yet');
      },
      freeStorage: () => asked.push('free'),
    } as unknown as Backend;
    checkKvDtype(refusing, 'auto');
    checkKvDtype(refusing, undefined);
    expect(asked).toEqual([]);
    expect(() => checkKvDtype(refusing, 'fp8')).toThrow('--kv-dtype fp8 is not supported on the CUDA backend yet');
  });
});
