import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLlamaConfig, parseLlamaConfig, ropeInvFreq, ropeSpec, type LlamaConfig, type RopeScaling } from './config.js';
import { TINY_MODEL_DIR, expectArkvaleError, makeTmpDir, removeTmpDirs, smallConfigJson } from './test-support/fixtures.js';

afterAll(removeTmpDirs);

const SRC = '/models/x/config.json';

describe('parseLlamaConfig', () => {
  it('reads the bundled model config', () => {
    const c = loadLlamaConfig(TINY_MODEL_DIR);
    expect(c).toMatchObject({
      modelType: 'llama',
      architecture: 'LlamaForCausalLM',
      vocabSize: 856,
      hiddenSize: 512,
      intermediateSize: 1536,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: null,
      maxPositionEmbeddings: 32768,
      tieWordEmbeddings: false,
      qkvBias: false,
      bosTokenId: 1,
      eosTokenIds: [2],
      torchDtype: 'float16',
    });
    expect(c.source).toBe(path.join(TINY_MODEL_DIR, 'config.json'));
    expect(loadLlamaConfig(path.join(TINY_MODEL_DIR, 'config.json')).headDim).toBe(128);
  });

  it('applies defaults: kv heads, head_dim, rope_theta, eps', () => {
    const json = smallConfigJson();
    delete json.num_key_value_heads;
    delete json.head_dim;
    delete json.rope_theta;
    delete json.rms_norm_eps;
    const c = parseLlamaConfig(json, SRC);
    expect(c.numKvHeads).toBe(2);
    expect(c.headDim).toBe(4);
    expect(c.ropeTheta).toBe(10000);
    expect(c.rmsNormEps).toBe(1e-6);
    expect(parseLlamaConfig({ ...smallConfigJson(), head_dim: null }, SRC).headDim).toBe(4);
  });

  it('accepts eos_token_id as a number or a list, and mistral', () => {
    expect(parseLlamaConfig(smallConfigJson({ eos_token_id: [128001, 128008, 128009] }), SRC).eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(parseLlamaConfig(smallConfigJson({ eos_token_id: null }), SRC).eosTokenIds).toEqual([]);
    const m = parseLlamaConfig(smallConfigJson({ model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: null }), SRC);
    expect(m.architecture).toBe('MistralForCausalLM');
    // A window no shorter than the context never takes effect.
    expect(parseLlamaConfig(smallConfigJson({ model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: 64 }), SRC).modelType).toBe(
      'mistral',
    );
  });

  it('reads rope scaling in the old ("type"), current ("rope_type") and transformers 5 ("rope_parameters") forms', () => {
    expect(parseLlamaConfig(smallConfigJson({ rope_scaling: { type: 'linear', factor: 2.0 } }), SRC).ropeScaling).toEqual({ type: 'linear', factor: 2 });
    expect(parseLlamaConfig(smallConfigJson({ rope_scaling: { rope_type: 'default' } }), SRC).ropeScaling).toBeNull();
    const llama3 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
    expect(parseLlamaConfig(smallConfigJson({ rope_scaling: llama3 }), SRC).ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    const v5 = parseLlamaConfig(smallConfigJson({ rope_theta: undefined, rope_parameters: { ...llama3, rope_theta: 500000.0 } }), SRC);
    expect(v5.ropeTheta).toBe(500000);
    expect(v5.ropeScaling?.type).toBe('llama3');
  });

  it('rejects other architectures, naming the file and the field', () => {
    expectArkvaleError(
      () => parseLlamaConfig({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }, SRC),
      'UNSUPPORTED_MODEL',
      SRC,
      '"model_type"',
      'gpt2',
    );
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ architectures: ['LlamaForSequenceClassification'] }), SRC),
      'UNSUPPORTED_MODEL',
      SRC,
      '"architectures"',
    );
    expectArkvaleError(() => parseLlamaConfig(smallConfigJson({ attention_bias: true }), SRC), 'UNSUPPORTED_MODEL', SRC, '"attention_bias"');
    expectArkvaleError(() => parseLlamaConfig(smallConfigJson({ mlp_bias: true }), SRC), 'UNSUPPORTED_MODEL', SRC, '"mlp_bias"');
    expectArkvaleError(() => parseLlamaConfig(smallConfigJson({ hidden_act: 'gelu' }), SRC), 'UNSUPPORTED_MODEL', SRC, '"hidden_act"', 'gelu');
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: 16 }), SRC),
      'UNSUPPORTED_MODEL',
      SRC,
      '"sliding_window"',
    );
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ rope_scaling: { rope_type: 'yarn', factor: 4 } }), SRC),
      'UNSUPPORTED_MODEL',
      SRC,
      '"rope_scaling.rope_type"',
      'yarn',
    );
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ rope_scaling: { type: 'dynamic', factor: 4 } }), SRC),
      'UNSUPPORTED_MODEL',
      SRC,
      '"rope_scaling.type"',
      'dynamic',
    );
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ quantization_config: { quant_method: 'gptq' } }), SRC),
      'UNSUPPORTED_MODEL',
      SRC,
      '"quantization_config"',
    );
    expectArkvaleError(() => parseLlamaConfig(smallConfigJson({ partial_rotary_factor: 0.5 }), SRC), 'UNSUPPORTED_MODEL', SRC, '"partial_rotary_factor"');
  });

  it('rejects malformed fields with INVALID_CONFIG naming the file and the field', () => {
    const noHidden = smallConfigJson();
    delete noHidden.hidden_size;
    expectArkvaleError(() => parseLlamaConfig(noHidden, SRC), 'INVALID_CONFIG', SRC, '"hidden_size"', 'required');
    expectArkvaleError(() => parseLlamaConfig(smallConfigJson({ num_attention_heads: '2' }), SRC), 'INVALID_CONFIG', SRC, '"num_attention_heads"');
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ num_key_value_heads: 3, num_attention_heads: 4 }), SRC),
      'INVALID_CONFIG',
      '"num_key_value_heads"',
    );
    expectArkvaleError(() => parseLlamaConfig(smallConfigJson({ rope_scaling: { rope_type: 'linear' } }), SRC), 'INVALID_CONFIG', '"rope_scaling.factor"');
    expectArkvaleError(
      () => parseLlamaConfig(smallConfigJson({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }), SRC),
      'INVALID_CONFIG',
      '"rope_scaling.original_max_position_embeddings"',
    );
    expectArkvaleError(() => parseLlamaConfig([1, 2], SRC), 'INVALID_CONFIG', SRC);
  });

  it('names the file when config.json is missing or not JSON', () => {
    const dir = makeTmpDir();
    expectArkvaleError(() => loadLlamaConfig(dir), 'MODEL_FILE', path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'config.json'), '{ "model_type": ');
    expectArkvaleError(() => loadLlamaConfig(dir), 'MODEL_FILE', path.join(dir, 'config.json'), 'not valid JSON');
  });
});

// ---------------------------------------------------------------------------
// RoPE: the formulas of transformers' modeling_rope_utils, written out again here.

function rope(headDim: number, ropeTheta: number, ropeScaling: RopeScaling | null): Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'> {
  return { headDim, ropeTheta, ropeScaling };
}

/** 1 / theta^(2i/d), in float64. */
function defaultInvFreq(theta: number, d: number): number[] {
  return Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
}

/** Llama 3.1 scaling in float64: keep high frequencies, divide low ones by factor, blend between. */
function llama3InvFreq(theta: number, d: number, factor: number, low: number, high: number, original: number): number[] {
  return defaultInvFreq(theta, d).map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < original / high) return f;
    if (wavelen > original / low) return f / factor;
    const smooth = (original / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

function expectClose(actual: Float32Array, expected: number[], relTol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const rel = Math.abs(actual[i] - expected[i]) / Math.abs(expected[i]);
    expect(rel, `index ${i}: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(relTol);
  }
}

function hexBits(a: Float32Array): string {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (x) => x.toString(16).padStart(8, '0')).join(' ');
}

/**
 * inv_freq buffers of transformers 5.17.0 / torch 2.11.0 LlamaRotaryEmbedding built on the
 * CPU, as float32 bit patterns (the same on CUDA for the unscaled table).
 */
const TRANSFORMERS_CPU = {
  theta500k_d128:
    '3f800000 3f508ac1 3f29e1c6 3f0a6384 3ee177bc 3eb7ab7d 3e959ee3 3e73c461 3e4693b0 3e21c3a0 3e03c6a0 3dd6b19c 3daee4ad 3d8e7898 3d681e67 3d3d1684 3d1a08c8 3cfaf53f 3ccc6f49 3ca68939 3c87a9c3 3c5d06ec 3c340d6d 3c12ac7f 3beef74f 3bc2aa76 3b9e9402 3b812e35 3b527720 3b2b72dc 3b0baa41 3ae38c10 3ab95d21 3a970023 3a7603ea 3a486886 3a23418d 3a04fdbf 39d8ac81 39b08199 398fc8f8 396a426f 393ed4f4 391b7475 38fd45c3 38ce51f5 38a8126b 3888ea0f 385f10c4 3835b687 381406cb 37f12b80 37c47610 37a00a69 37825f34 37546808 372d07a7 370cf400 36e5a54d 36bb12c7 369864a7 367848c2 364a41b0 3624c2ff',
  theta10k_d128_linear3:
    '3eaaaaab 3e93ca8f 3e7ff6c1 3e5da7d5 3e3ff223 3e2637df 3e0ff067 3df94acf 3dd7e0cf 3dbaf15b 3da1e2c2 3d8c2ff3 3d72cb5f 3d524055 3d3611f4 3d1daa8f 3d088889 3cec774b 3cccc567 3cb15311 3c998e81 3c84f97f 3c664d71 3c476f0b 3c2cb3d9 3c158de1 3c018235 3be04cb9 3bc23c4c 3ba83377 3b91a7f7 3b7c4417 3b5a740d 3b3d2c3c 3b23d120 3b0ddc0e 3af5b0d0 3ad4c265 3ab83df4 3a9f8c09 3a8a297b 3a6f4969 3a4f36bc 3a337094 3a1b6370 3a068f93 39e90cbd 39c9d013 39aec33f 39975697 39830db3 3962f9b0 39448d73 392a351d 391364c3 38ff4674 38dd0f2b 38bf6ded 38a5c563 388f8d43 38789f19 38574c1d 383a7098 38217341',
  theta500k_d128_llama3_8:
    '3f800000 3f508ac1 3f29e1c6 3f0a6384 3ee177bc 3eb7ab7d 3e959ee3 3e73c461 3e4693b0 3e21c3a0 3e03c6a0 3dd6b19c 3daee4ad 3d8e7898 3d681e67 3d3d1684 3d1a08c8 3cfaf53f 3ccc6f49 3ca68939 3c87a9c3 3c5d06ec 3c340d6d 3c12ac7f 3beef74f 3bc2aa76 3b9e9402 3b812e35 3b527720 3b0dfd06 3ab3d11d 3a60979e 3a0995d2 39a3f108 393b2dd2 38c86886 38a3418d 3884fdbf 3858ac81 38308199 380fc8f8 37ea426f 37bed4f4 379b7475 377d45c3 374e51f5 3728126b 3708ea0f 36df10c4 36b5b687 369406cb 36712b80 36447610 36200a69 36025f34 35d46808 35ad07a7 358cf400 3565a54d 353b12c7 351864a7 34f848c2 34ca41b0 34a4c2ff',
};

const LLAMA31: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };

describe('ropeInvFreq / ropeSpec', () => {
  it('default scaling with the default theta (10000) follows 1/theta^(2i/d)', () => {
    const json = smallConfigJson({ head_dim: 128, num_attention_heads: 2, hidden_size: 256 });
    delete json.rope_theta;
    const c = parseLlamaConfig(json, SRC);
    const expected = defaultInvFreq(10000, 128);
    expect(Array.from(ropeInvFreq(c, { precision: 'float64' }))).toEqual(expected.map(Math.fround));
    expectClose(ropeInvFreq(c), expected, 1.2e-7); // float32 arithmetic: within an ulp
    expect(ropeInvFreq(c)[0]).toBe(1);
    expect(ropeInvFreq(c)[1]).toBeCloseTo(10000 ** (-2 / 128), 7);
  });

  it('linear scaling divides every frequency by the factor', () => {
    const c = rope(128, 10000, { type: 'linear', factor: 3 });
    const expected = defaultInvFreq(10000, 128).map((f) => f / 3);
    expect(Array.from(ropeInvFreq(c, { precision: 'float64' }))).toEqual(expected.map(Math.fround));
    expectClose(ropeInvFreq(c), expected, 2.4e-7);
  });

  it('llama3 scaling keeps high, divides low and blends medium frequencies', () => {
    const expected = llama3InvFreq(500000, 128, 8, 1, 4, 8192);
    const c = rope(128, 500000, LLAMA31);
    expect(Array.from(ropeInvFreq(c, { precision: 'float64' }))).toEqual(expected.map(Math.fround));
    const inv = ropeInvFreq(c);
    expectClose(inv, expected, 4e-7);
    // The three regimes are all present for Llama 3.1's parameters.
    const base = defaultInvFreq(500000, 128);
    const wavelen = base.map((f) => (2 * Math.PI) / f);
    const high = wavelen.findIndex((w) => w >= 2048);
    const low = wavelen.findIndex((w) => w > 8192);
    expect(high).toBeGreaterThan(0);
    expect(low).toBeGreaterThan(high);
    expect(inv[high - 1]).toBeCloseTo(base[high - 1], 9);
    expect(inv[low] / base[low]).toBeCloseTo(1 / 8, 6);
    expect(inv[high] / base[high]).toBeGreaterThan(1 / 8);
    expect(inv[high] / base[high]).toBeLessThan(1);
    // Llama 3.2 style (factor 32, head_dim 64) too.
    expectClose(ropeInvFreq(rope(64, 500000, { ...LLAMA31, factor: 32 })), llama3InvFreq(500000, 64, 32, 1, 4, 8192), 4e-7);
  });

  it('matches transformers bit for bit in its default (float32) precision', () => {
    expect(hexBits(ropeInvFreq(loadLlamaConfig(TINY_MODEL_DIR)))).toBe(TRANSFORMERS_CPU.theta500k_d128);
    expect(hexBits(ropeInvFreq(rope(128, 10000, { type: 'linear', factor: 3 })))).toBe(TRANSFORMERS_CPU.theta10k_d128_linear3);
    expect(hexBits(ropeInvFreq(rope(128, 500000, LLAMA31)))).toBe(TRANSFORMERS_CPU.theta500k_d128_llama3_8);
    // float64 evaluation rounds differently in the last bit for some entries.
    expect(hexBits(ropeInvFreq(loadLlamaConfig(TINY_MODEL_DIR), { precision: 'float64' }))).not.toBe(TRANSFORMERS_CPU.theta500k_d128);
  });

  it('builds a RopeSpec', () => {
    const spec = ropeSpec(loadLlamaConfig(TINY_MODEL_DIR), 4096);
    expect(spec.headDim).toBe(128);
    expect(spec.maxPositions).toBe(4096);
    expect(spec.invFreq).toBeInstanceOf(Float32Array);
    expect(spec.invFreq.length).toBe(64);
    expect(spec.attentionFactor).toBe(1);
    expectArkvaleError(() => ropeSpec(loadLlamaConfig(TINY_MODEL_DIR), 0), 'INVALID_ARGUMENT', 'maxPositions');
  });
});
