import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend, type Tensor } from '@arkvale/core';
import { loadLlamaConfig, parseLlamaConfig } from './config.js';
import { SafetensorsCheckpoint } from './safetensors.js';
import {
  TINY_MODEL_DIR,
  copyTinyModel,
  expectArkvaleErrorAsync,
  makeTmpDir,
  readRawSafetensors,
  removeTmpDirs,
  smallConfigJson,
  syntheticLlamaTensors,
  writeSafetensors,
  writeSyntheticModel,
  type RawTensor,
} from './test-support/fixtures.js';
import { disposeLlamaWeights, loadLlamaWeights, stackLayerWeights, type LlamaWeights } from './weights.js';

afterAll(removeTmpDirs);

/** IEEE 754 binary16, decoded by hand: sign, 5-bit exponent (bias 15), 10-bit fraction. */
function decodeHalf(bits: number): number {
  const sign = bits >> 15 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * (fraction / 1024) * 2 ** -14;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Element `index` of tensor `name`, read straight from the file's bytes. */
function rawHalf(file: string, name: string, index: number): number {
  const fd = fs.openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const header = Buffer.alloc(n);
    fs.readSync(fd, header, 0, n, 8);
    const entry = JSON.parse(header.toString('utf8'))[name] as { dtype: string; data_offsets: [number, number] };
    expect(entry.dtype).toBe('F16');
    const two = Buffer.alloc(2);
    fs.readSync(fd, two, 0, 2, 8 + n + entry.data_offsets[0] + 2 * index);
    return decodeHalf(two[0] | (two[1] << 8));
  } finally {
    fs.closeSync(fd);
  }
}

const backend = new ReferenceBackend();
const data = (t: Tensor): Float32Array => backend.readSync(t) as Float32Array;

describe('loadLlamaWeights on the bundled model', () => {
  const config = loadLlamaConfig(TINY_MODEL_DIR);
  let weights: LlamaWeights;
  const progress: [number, number][] = [];

  it('loads every tensor with its shape, reporting progress', async () => {
    weights = await loadLlamaWeights(TINY_MODEL_DIR, config, backend, { onProgress: (a, b) => progress.push([a, b]) });
    expect(weights.embedTokens.shape).toEqual([856, 512]);
    expect(weights.lmHead.shape).toEqual([856, 512]);
    expect(weights.lmHead).not.toBe(weights.embedTokens);
    expect(weights.tiedLmHead).toBe(false);
    expect(weights.norm.shape).toEqual([512]);
    expect(weights.layers.length).toBe(4);
    for (const l of weights.layers) {
      expect(l.inputNorm.shape).toEqual([512]);
      expect(l.postNorm.shape).toEqual([512]);
      // q (512 rows), k and v (256 each) stacked; gate and up (1536 each) stacked.
      expect(l.qkv.shape).toEqual([1024, 512]);
      expect(l.o.shape).toEqual([512, 512]);
      expect(l.gateUp.shape).toEqual([3072, 512]);
      expect(l.down.shape).toEqual([512, 1536]);
    }
    const total = 13_464_064 * 2;
    expect(weights.totalBytes).toBe(total);
    expect(progress[0]).toEqual([0, total]);
    expect(progress.at(-1)).toEqual([total, total]);
    expect(progress.length).toBe(1 + 2 + 4 * 9 + 1);
    for (let i = 1; i < progress.length; i++) expect(progress[i][0]).toBeGreaterThan(progress[i - 1][0]);
  });

  it('holds the float16 values of the file, decoded by hand', () => {
    const file = path.join(TINY_MODEL_DIR, 'model.safetensors');
    // [name, tensor, index in the file's tensor, index in ours]: stacked tensors start
    // k after q's 512 x 512 values, v after k's 256 x 512, up after gate's 1536 x 512.
    const checks: [string, Tensor, number, number][] = [
      ['model.embed_tokens.weight', weights.embedTokens, 0, 0],
      ['model.embed_tokens.weight', weights.embedTokens, 856 * 512 - 1, 856 * 512 - 1],
      ['model.layers.0.self_attn.q_proj.weight', weights.layers[0].qkv, 12345, 12345],
      ['model.layers.2.self_attn.k_proj.weight', weights.layers[2].qkv, 513, 512 * 512 + 513],
      ['model.layers.1.self_attn.v_proj.weight', weights.layers[1].qkv, 256 * 512 - 1, 1024 * 512 - 1],
      ['model.layers.0.mlp.gate_proj.weight', weights.layers[0].gateUp, 77, 77],
      ['model.layers.2.mlp.up_proj.weight', weights.layers[2].gateUp, 0, 1536 * 512],
      ['model.layers.3.mlp.down_proj.weight', weights.layers[3].down, 512 * 1536 - 7, 512 * 1536 - 7],
      ['model.layers.1.input_layernorm.weight', weights.layers[1].inputNorm, 17, 17],
      ['model.norm.weight', weights.norm, 511, 511],
      ['lm_head.weight', weights.lmHead, 4242, 4242],
    ];
    for (const [name, tensor, index, ours] of checks) {
      const expected = rawHalf(file, name, index);
      expect(Number.isFinite(expected)).toBe(true);
      expect(data(tensor)[ours], `${name}[${index}]`).toBe(expected);
    }
    // Not all zeros or a constant.
    const q = data(weights.layers[0].qkv);
    expect(new Set(q.subarray(0, 100)).size).toBeGreaterThan(50);
  });

  it('loads a 2-shard copy of the checkpoint to identical tensors', async () => {
    const dir = makeTmpDir();
    fs.copyFileSync(path.join(TINY_MODEL_DIR, 'config.json'), path.join(dir, 'config.json'));
    const tensors = readRawSafetensors(path.join(TINY_MODEL_DIR, 'model.safetensors'));
    const half = Math.floor(tensors.length / 2);
    const shards: [string, RawTensor[]][] = [
      ['model-00001-of-00002.safetensors', tensors.slice(0, half)],
      ['model-00002-of-00002.safetensors', tensors.slice(half)],
    ];
    const weightMap: Record<string, string> = {};
    for (const [name, list] of shards) {
      writeSafetensors(path.join(dir, name), list);
      for (const t of list) weightMap[t.name] = name;
    }
    const totalSize = tensors.reduce((n, t) => n + t.data.byteLength, 0);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }));

    const ckpt = SafetensorsCheckpoint.open(dir);
    expect(ckpt.files.length).toBe(2);
    const sharded = await loadLlamaWeights(dir, config, backend, { checkpoint: ckpt });
    ckpt.close();
    const pairs: [Tensor, Tensor][] = [
      [sharded.embedTokens, weights.embedTokens],
      [sharded.norm, weights.norm],
      [sharded.lmHead, weights.lmHead],
    ];
    sharded.layers.forEach((l, i) => {
      for (const k of ['inputNorm', 'qkv', 'o', 'postNorm', 'gateUp', 'down'] as const) pairs.push([l[k], weights.layers[i][k]]);
    });
    for (const [a, b] of pairs) {
      expect(a.shape).toEqual(b.shape);
      expect(Buffer.from(data(a).buffer).equals(Buffer.from(data(b).buffer))).toBe(true);
    }
    disposeLlamaWeights(sharded, backend);
  });
});

describe('loadLlamaWeights errors and tying', () => {
  const cfgJson = smallConfigJson();
  const config = (json = cfgJson) => parseLlamaConfig(json, '/fixture/config.json');

  it('loads a synthetic checkpoint with mixed f16/f32 tensors', async () => {
    const dir = writeSyntheticModel();
    const w = await loadLlamaWeights(dir, config(), backend);
    expect(w.layers.length).toBe(2);
    // q's 2 x 4 rows, then k's and v's 1 x 4 each; gate's and up's 16 each.
    expect(w.layers[0].qkv.shape).toEqual([16, 8]);
    expect(w.layers[0].gateUp.shape).toEqual([32, 8]);
    expect(w.layers[0].o.shape).toEqual([8, 8]);
  });

  it('ties lm_head to the embedding when tie_word_embeddings is set', async () => {
    const json = smallConfigJson({ tie_word_embeddings: true });
    const dir = writeSyntheticModel(json, syntheticLlamaTensors(json, { lmHead: false }));
    const w = await loadLlamaWeights(dir, config(json), backend);
    expect(w.tiedLmHead).toBe(true);
    expect(w.lmHead).toBe(w.embedTokens);
    disposeLlamaWeights(w, backend);
  });

  it('names a missing tensor', async () => {
    const dir = writeSyntheticModel(
      cfgJson,
      syntheticLlamaTensors(cfgJson).filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'),
    );
    await expectArkvaleErrorAsync(() => loadLlamaWeights(dir, config(), backend), 'MODEL_FILE', '"model.layers.1.mlp.up_proj.weight"', 'missing', '[16, 8]');
    const noHead = writeSyntheticModel(cfgJson, syntheticLlamaTensors(cfgJson, { lmHead: false }));
    await expectArkvaleErrorAsync(() => loadLlamaWeights(noHead, config(), backend), 'MODEL_FILE', '"lm_head.weight"', 'tie_word_embeddings');
  });

  it('names a tensor of the wrong shape with the expected and actual shapes', async () => {
    const tensors = syntheticLlamaTensors(cfgJson).map((t) => (t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, shape: [8, 4] } : t));
    const dir = writeSyntheticModel(cfgJson, tensors);
    await expectArkvaleErrorAsync(
      () => loadLlamaWeights(dir, config(), backend),
      'MODEL_FILE',
      '"model.layers.0.self_attn.k_proj.weight"',
      path.join(dir, 'model.safetensors'),
      'has shape [8, 4], expected [4, 8]',
    );
  });

  it('names an unsupported dtype', async () => {
    const tensors = [
      ...syntheticLlamaTensors(cfgJson),
      { name: 'model.layers.0.self_attn.rotary_emb.position_ids', dtype: 'I64', shape: [2], data: new Uint8Array(16) },
    ];
    const dir = writeSyntheticModel(cfgJson, tensors);
    await expectArkvaleErrorAsync(() => loadLlamaWeights(dir, config(), backend), 'MODEL_FILE', '"model.layers.0.self_attn.rotary_emb.position_ids"', 'I64');
  });

  it('rejects biased projections', async () => {
    const tensors = [...syntheticLlamaTensors(cfgJson), { name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [8], data: new Uint8Array(32) }];
    const dir = writeSyntheticModel(cfgJson, tensors);
    await expectArkvaleErrorAsync(() => loadLlamaWeights(dir, config(), backend), 'UNSUPPORTED_MODEL', '"model.layers.0.self_attn.q_proj.bias"');
  });

  it('names the file when the data was cut after the header was read', async () => {
    const dir = copyTinyModel({ weights: false });
    const src = path.join(TINY_MODEL_DIR, 'model.safetensors');
    const dst = path.join(dir, 'model.safetensors');
    fs.copyFileSync(src, dst);
    const ckpt = SafetensorsCheckpoint.open(dir);
    fs.truncateSync(dst, 4_000_000);
    await expectArkvaleErrorAsync(() => loadLlamaWeights(dir, loadLlamaConfig(dir), backend, { checkpoint: ckpt }), 'MODEL_FILE', dst, 'truncated', 'tensor "');
    ckpt.close();
  });
});

describe('stackLayerWeights', () => {
  const parts = () => {
    const b = new ReferenceBackend();
    const t = (rows: number, v: number) => b.fromArray(new Float32Array(rows * 2).fill(v), [rows, 2]);
    return { b, layer: { inputNorm: t(1, 0), q: t(2, 1), k: t(1, 2), v: t(1, 3), o: t(2, 4), postNorm: t(1, 5), gate: t(3, 6), up: t(3, 7), down: t(2, 8) } };
  };

  it('stacks q/k/v and gate/up in that row order and disposes the parts', () => {
    const { b, layer } = parts();
    const disposed: unknown[] = [];
    const spy = Object.assign(Object.create(b) as ReferenceBackend, { dispose: (x: Tensor) => disposed.push(x) });
    const w = stackLayerWeights(spy, layer);
    expect(Array.from(b.readSync(w.qkv))).toEqual([1, 1, 1, 1, 2, 2, 3, 3]);
    expect(Array.from(b.readSync(w.gateUp))).toEqual([6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7]);
    expect(disposed).toEqual([layer.q, layer.k, layer.v, layer.gate, layer.up]);
    expect([w.inputNorm, w.o, w.postNorm, w.down]).toEqual([layer.inputNorm, layer.o, layer.postNorm, layer.down]);
  });

  it('holds nothing of its own when a stack cannot be made, and leaves the parts to the caller', () => {
    const { b, layer } = parts();
    const disposed: unknown[] = [];
    let made: Tensor | undefined;
    let calls = 0;
    const spy = Object.assign(Object.create(b) as ReferenceBackend, {
      dispose: (x: Tensor) => disposed.push(x),
      concatRows: (xs: readonly Tensor[]) => {
        if (++calls === 2) throw new Error('out of device memory');
        return (made = b.concatRows(xs));
      },
    });
    expect(() => stackLayerWeights(spy, layer)).toThrow(/out of device memory/);
    expect(disposed).toEqual([made]);
  });
});
