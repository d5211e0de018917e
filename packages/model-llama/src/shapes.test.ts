import { describe, expect, it } from 'vitest';
import { KvCache, ReferenceBackend } from '@arkvale/core';
import { LlamaForward } from './forward.js';
import { countParameters, kvGeometry } from './model-dir.js';
import { LLAMA_SHAPES, randomLlamaWeights, shapeConfig } from './shapes.js';

describe('benchmark model shapes', () => {
  it('describe the named architectures', () => {
    const l2 = shapeConfig('llama2-7b');
    expect([l2.numLayers, l2.numHeads, l2.numKvHeads, l2.headDim, l2.hiddenSize, l2.intermediateSize, l2.vocabSize]).toEqual([
      32, 32, 32, 128, 4096, 11008, 32000,
    ]);
    // 6.74B parameters: Llama-2-7B's count.
    expect(Math.round(countParameters(l2) / 1e7)).toBe(674);
    const l3 = shapeConfig('llama3-8b');
    expect([l3.numKvHeads, l3.intermediateSize, l3.vocabSize, l3.ropeTheta]).toEqual([8, 14336, 128256, 500000]);
    expect(Math.round(countParameters(l3) / 1e8)).toBe(80);
    // Llama-2-70B: 68.98B parameters, grouped-query attention 64 / 8.
    const l70 = shapeConfig('llama2-70b');
    expect([l70.numLayers, l70.numHeads, l70.numKvHeads, l70.headDim, l70.hiddenSize, l70.intermediateSize]).toEqual([80, 64, 8, 128, 8192, 28672]);
    expect(Math.round(countParameters(l70) / 1e7)).toBe(6898);
    expect(Object.keys(LLAMA_SHAPES)).toContain('tiny-retrieval');
    expect(() => shapeConfig('gpt-5')).toThrow(/unknown model shape "gpt-5"; expected one of: llama2-7b, llama3-8b, llama2-70b, tiny-retrieval/);
  });

  it('random weights of the bundled shape run the forward pass, reproducibly from the seed', () => {
    const config = shapeConfig('tiny-retrieval');
    const logitsOf = (seed: number) => {
      const b = new ReferenceBackend();
      const forward = new LlamaForward(config, randomLlamaWeights(config, b, seed), b, 64);
      const cache = new KvCache({ geometry: kvGeometry(config, 16, 4), options: { policy: 'full', devicePages: 32 }, backend: b });
      const id = cache.admit(8);
      forward.prefill(cache, [{ id, tokens: [1, 5, 9, 200, 3, 855, 0, 17] }]);
      return b.readSync(forward.decode(cache, [id], [42]));
    };
    const a = logitsOf(1);
    expect(a).toHaveLength(856);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(Array.from(logitsOf(1))).toEqual(Array.from(a));
    expect(Array.from(logitsOf(2))).not.toEqual(Array.from(a));
    // Matrices uniform with the standard deviation of transformers' 0.02-normal initialiser.
    const w = new ReferenceBackend();
    const q = w.readSync(randomLlamaWeights(config, w, 1).layers[0].qkv) as Float32Array;
    expect(Math.abs(Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length) - 0.02)).toBeLessThan(0.001);
  });

  it('gives every embedding a shared component on request, the seeds of the other weights unchanged', () => {
    const config = shapeConfig('tiny-retrieval');
    const b = new ReferenceBackend();
    const rowsOf = (shared?: number) => {
      const w = randomLlamaWeights(config, b, 3, shared === undefined ? {} : { sharedEmbedding: shared });
      return { embed: b.readSync(w.embedTokens) as Float32Array, q: Array.from(b.readSync(w.layers[0].qkv)), head: Array.from(b.readSync(w.lmHead)) };
    };
    const h = config.hiddenSize;
    const cosine = (e: Float32Array, i: number, j: number) => {
      let dot = 0,
        ni = 0,
        nj = 0;
      for (let d = 0; d < h; d++) {
        dot += e[i * h + d] * e[j * h + d];
        ni += e[i * h + d] ** 2;
        nj += e[j * h + d] ** 2;
      }
      return dot / Math.sqrt(ni * nj);
    };
    const meanCosine = (e: Float32Array) => {
      let sum = 0;
      for (let i = 0; i < 40; i++) sum += cosine(e, i, i + 400);
      return sum / 40;
    };
    const plain = rowsOf();
    const shared = rowsOf(1);
    // Independent rows are nearly orthogonal; a shared part as large as the rest makes cos = 1/2.
    expect(Math.abs(meanCosine(plain.embed))).toBeLessThan(0.05);
    expect(Math.abs(meanCosine(shared.embed) - 0.5)).toBeLessThan(0.08);
    // Each row is its plain counterpart plus one common vector.
    const diff = (r: number, d: number) => shared.embed[r * h + d] - plain.embed[r * h + d];
    for (const d of [0, 7, h - 1]) expect(diff(855, d)).toBeCloseTo(diff(0, d), 6);
    expect(shared.q).toEqual(plain.q);
    expect(shared.head).toEqual(plain.head);
    expect(Array.from(rowsOf(0).embed)).toEqual(Array.from(plain.embed));
    expect(() => randomLlamaWeights(config, b, 3, { sharedEmbedding: -1 })).toThrow(/sharedEmbedding must be a finite number >= 0, got -1/);
  });
});
