import { decodeFloats, KvCache, ReferenceBackend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { afterAll, describe, expect, it } from 'vitest';
import { parseLlamaConfig } from './config.js';
import { LlamaForward } from './forward.js';
import { kvGeometry } from './model-dir.js';
import { f32Bytes, removeTmpDirs, smallConfigJson, syntheticLlamaTensors, writeSyntheticModel, type RawTensor } from './test-support/fixtures.js';
import { loadLlamaWeights, planLlamaWeights } from './weights.js';
import { SafetensorsCheckpoint } from './safetensors.js';

/*
 * The Qwen2 architecture (q/k/v biases, tied embeddings) against a plain float64
 * transformer written out here from the Hugging Face definition: embedding, then per
 * layer RMSNorm, q/k/v with their biases, RoPE (rotate half), causal grouped-query
 * attention, o, residual, RMSNorm, SiLU-gated MLP, residual; final norm, and the
 * embedding as the LM head. (The golden test against transformers itself needs
 * tools/peers/make_qwen2_fixture.py's checkpoint, made where transformers exists.)
 */

const json = smallConfigJson({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1_000_000 });
const config = parseLlamaConfig(json, 'qwen2 test config');

/** The checkpoint: the synthetic LLaMA tensors without lm_head, plus q/k/v biases well away from zero. */
function qwen2Tensors(): RawTensor[] {
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  const bias = (name: string, n: number, seed: number): RawTensor => ({
    name,
    dtype: 'F32',
    shape: [n],
    data: f32Bytes(Array.from({ length: n }, (_, i) => Math.sin(seed * 7 + i) * 0.8)),
  });
  const tensors = syntheticLlamaTensors(json, { lmHead: false });
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.self_attn.`;
    tensors.push(bias(`${p}q_proj.bias`, q, 3 * l + 1), bias(`${p}k_proj.bias`, kv, 3 * l + 2), bias(`${p}v_proj.bias`, kv, 3 * l + 3));
  }
  return tensors;
}

/** Logits of every position, in float64, from the raw tensors. */
function referenceLogits(tensors: readonly RawTensor[], tokens: readonly number[]): number[][] {
  const t = new Map(tensors.map((x) => [x.name, Array.from(decodeFloats(x.data, x.dtype === 'F16' ? 'f16' : 'f32'))]));
  const w = (name: string) => t.get(name)!;
  const { hiddenSize: H, numHeads, numKvHeads, headDim: d, rmsNormEps: eps, ropeTheta } = config;
  const matvec = (m: number[], x: number[], rows: number) => Array.from({ length: rows }, (_, r) => x.reduce((s, xi, c) => s + m[r * x.length + c] * xi, 0));
  const rms = (x: number[], g: number[]) => {
    const scale = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
    return x.map((v, i) => v * scale * g[i]);
  };
  const rope = (x: number[], pos: number) => {
    const out = x.slice();
    for (let i = 0; i < d / 2; i++) {
      const angle = pos * ropeTheta ** (-(2 * i) / d);
      out[i] = x[i] * Math.cos(angle) - x[i + d / 2] * Math.sin(angle);
      out[i + d / 2] = x[i + d / 2] * Math.cos(angle) + x[i] * Math.sin(angle);
    }
    return out;
  };
  const embed = w('model.embed_tokens.weight');
  let xs = tokens.map((tok) => embed.slice(tok * H, (tok + 1) * H));
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const proj = (name: string, x: number[], rows: number) => matvec(w(`${p}${name}.weight`), x, rows).map((v, i) => v + w(`${p}${name}.bias`)[i]);
    const hs = xs.map((x) => rms(x, w(`${p}input_layernorm.weight`)));
    const qs = hs.map((h) => proj('self_attn.q_proj', h, numHeads * d));
    const ks = hs.map((h) => proj('self_attn.k_proj', h, numKvHeads * d));
    const vs = hs.map((h) => proj('self_attn.v_proj', h, numKvHeads * d));
    const head = (v: number[], i: number) => v.slice(i * d, (i + 1) * d);
    xs = xs.map((x, pos) => {
      const attn: number[] = [];
      for (let hd = 0; hd < numHeads; hd++) {
        const g = Math.floor(hd / (numHeads / numKvHeads));
        const q = rope(head(qs[pos], hd), pos);
        const scores = Array.from({ length: pos + 1 }, (_, s) => rope(head(ks[s], g), s).reduce((a, k, i) => a + k * q[i], 0) / Math.sqrt(d));
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < d; i++) attn.push(e.reduce((a, p, s) => a + (p / z) * head(vs[s], g)[i], 0));
      }
      const y = matvec(w(`${p}self_attn.o_proj.weight`), attn, H).map((v, i) => v + x[i]);
      const h2 = rms(y, w(`${p}post_attention_layernorm.weight`));
      const I = config.intermediateSize;
      const gate = matvec(w(`${p}mlp.gate_proj.weight`), h2, I);
      const up = matvec(w(`${p}mlp.up_proj.weight`), h2, I);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      return matvec(w(`${p}mlp.down_proj.weight`), act, H).map((v, i) => v + y[i]);
    });
  }
  return xs.map((x) => matvec(embed, rms(x, w('model.norm.weight')), config.vocabSize));
}

describe('Qwen2 (q/k/v biases, tied embeddings)', () => {
  afterAll(() => removeTmpDirs());

  it('reads the architecture: biases on q, k and v, the embedding as the LM head', () => {
    expect(config).toMatchObject({ modelType: 'qwen2', architecture: 'Qwen2ForCausalLM', qkvBias: true, tieWordEmbeddings: true, ropeTheta: 1_000_000 });
    expect(() => parseLlamaConfig({ ...json, use_sliding_window: true }, 'x')).toThrow(/use_sliding_window/);
    // A LLaMA checkpoint with q/k/v biases is still refused: only Qwen2 reads them.
    const llama = parseLlamaConfig(smallConfigJson(), 'llama');
    const dir = writeSyntheticModel(smallConfigJson(), [
      ...syntheticLlamaTensors(smallConfigJson()),
      ...qwen2Tensors().filter((x) => x.name.endsWith('.bias')),
    ]);
    const ckpt = SafetensorsCheckpoint.open(dir);
    expect(() => planLlamaWeights(ckpt, llama)).toThrow(/bias tensor/);
    ckpt.close();
  });

  for (const [name, make] of [
    ['reference', () => new ReferenceBackend()],
    ['cpu', () => new CpuBackend()],
  ] as const)
    it(`${name}: gives the logits of the float64 reference at every position`, async () => {
      const tensors = qwen2Tensors();
      const dir = writeSyntheticModel(json, tensors);
      const backend = make();
      const weights = await loadLlamaWeights(dir, config, backend);
      expect(weights.layers[0].qkvBias?.shape).toEqual([1, (config.numHeads + 2 * config.numKvHeads) * config.headDim]);
      expect(weights.lmHead).toBe(weights.embedTokens);
      const forward = new LlamaForward(config, weights, backend);
      const tokens = [1, 5, 9, 3, 7, 11, 2, 4];
      const cache = new KvCache({ geometry: kvGeometry(config, 4, 4), options: { policy: 'full', devicePages: 64, hostPages: 64 }, backend });
      const id = cache.admit(tokens.length);
      const got = backend.readSync(
        forward.forwardRows({
          segments: [{ tokens, positions: tokens.map((_, i) => i), attend: (l, q, k, v) => cache.prefillLayer(id, l, q, k, v, forward.scale) }],
          logitRows: tokens.map((_, i) => i),
        }),
      );
      const expected = referenceLogits(tensors, tokens).flat();
      expect(got.length).toBe(expected.length);
      expect(expected.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0)).toBeLessThan(1e-3);
      // The biases matter: without them the logits move.
      const unbiased = referenceLogits(
        tensors.map((x) => (x.name.endsWith('.bias') ? { ...x, data: f32Bytes(new Array(x.shape[0]).fill(0)) } : x)),
        tokens,
      ).flat();
      expect(unbiased.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0)).toBeGreaterThan(1e-2);
    });
});
