import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { LlamaEngine } from './engine.js';

const modelDir = fileURLToPath(new URL('../../../models/tiny-retrieval', import.meta.url));

/**
 * The reference backend against Hugging Face transformers (float32): the same greedy
 * tokens and the same top-10 last-position logits to 1e-3 relative.
 */
describe('LLaMA forward on the reference backend vs golden.json', async () => {
  const engine = await LlamaEngine.load(modelDir, new ReferenceBackend());
  const fwd = engine.forward;

  it.each(golden.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const cache = engine.createCache({ policy: 'full', pageSize: 16 }, c.ids.length + c.greedy.length);
    const id = cache.admit(c.ids.length);
    let logits = engine.backend.readSync(fwd.prefill(cache, [{ id, tokens: c.ids }])) as Float32Array;
    const top = c.last_logits_top10;
    top.ids.forEach((tokenId, i) => {
      expect(Math.abs(logits[tokenId] - top.values[i])).toBeLessThanOrEqual(1e-3 * Math.abs(top.values[i]));
    });
    // The golden top-10 are our top-10 too (ties within 1e-3 may swap order).
    const ours = [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 10);
    expect(new Set(ours)).toEqual(new Set(top.ids));
    const tokens: number[] = [];
    for (let i = 0; i < c.greedy.length; i++) {
      const next = logits.indexOf(Math.max(...logits));
      tokens.push(next);
      if (i + 1 < c.greedy.length) logits = engine.backend.readSync(fwd.decode(cache, [id], [next])) as Float32Array;
    }
    expect(tokens).toEqual(c.greedy);
    cache.free(id);
  });

  it('Full and ArkVale with a budget that holds everything generate identical tokens', () => {
    const c = golden.cases[0];
    const request = { promptIds: c.ids, maxTokens: 24, ignoreEos: true };
    const full = engine.generate([request], { policy: 'full', pageSize: 4 });
    const arkvale = engine.generate([request], { policy: 'arkvale', pageSize: 4, budgetTokens: 64, sinkPages: 1, windowPages: 2 });
    expect(arkvale.outputs[0].tokenIds).toEqual(full.outputs[0].tokenIds);
    expect(full.outputs[0].tokenIds).toEqual(c.greedy.slice(0, 24));
    // Everything fit: nothing was evicted or recalled.
    expect(arkvale.kv.recalls + arkvale.kv.evictions).toBe(0);
  });

  it('batches sequences of different lengths with the same tokens as one at a time', () => {
    const a = { promptIds: golden.cases[0].ids, maxTokens: 6, ignoreEos: true };
    const b = { promptIds: golden.tokenizer[0].ids, maxTokens: 9, ignoreEos: true };
    const plan = { policy: 'arkvale' as const, pageSize: 2, budgetTokens: 8, sinkPages: 1, windowPages: 1, fullLayers: 0 };
    const together = engine.generate([a, b], plan).outputs.map((o) => o.tokenIds);
    const alone = [engine.generate([a], plan).outputs[0].tokenIds, engine.generate([b], plan).outputs[0].tokenIds];
    expect(together).toEqual(alone);
    expect(together.map((t) => t.length)).toEqual([6, 9]);
  });
});
