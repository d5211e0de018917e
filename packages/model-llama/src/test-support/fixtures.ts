/**
 * Test fixtures built at test time in temporary folders (no binary fixtures are
 * committed): safetensors writers, small synthetic LLaMA checkpoints, and copies of
 * the bundled model folder.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { ArkvaleError, floatToHalfBits, type ArkvaleErrorCode } from '@arkvale/core';

/** The bundled model, resolved from this file (src/test-support -> ../../../../models). */
export const TINY_MODEL_DIR = fileURLToPath(new URL('../../../../models/tiny-retrieval/', import.meta.url));

const created: string[] = [];

export function makeTmpDir(prefix = 'arkvale-model-llama-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

export function removeTmpDirs(): void {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export interface RawTensor {
  readonly name: string;
  /** safetensors dtype string (F16, BF16, F32, I64, ...). */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** Writes a safetensors file; `editHeader` may tamper with the JSON header object first. */
export function writeSafetensors(file: string, tensors: readonly RawTensor[], editHeader?: (header: Record<string, unknown>) => void): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  editHeader?.(header);
  writeSafetensorsRaw(
    file,
    JSON.stringify(header),
    tensors.map((t) => t.data),
  );
}

/** Writes the length prefix, the header text (padded to 8 bytes as safetensors does) and the data. */
export function writeSafetensorsRaw(file: string, headerText: string, data: readonly Uint8Array[]): void {
  let json = Buffer.from(headerText, 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...data.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength))]));
}

/** Reads a real safetensors file's header and tensors (for re-sharding it). */
export function readRawSafetensors(file: string): RawTensor[] {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  return Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, h]) => ({ name, dtype: h.dtype, shape: h.shape, data: new Uint8Array(bytes.subarray(base + h.data_offsets[0], base + h.data_offsets[1])) }));
}

/** IEEE half bits of a number (round to nearest even), for building f16 fixtures. */
export const toHalfBits = floatToHalfBits;

export function f16Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(2 * i, toHalfBits(values[i]), true);
  return out;
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A small LLaMA config.json (object form). */
export function smallConfigJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    torch_dtype: 'float16',
    vocab_size: 12,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 4,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    ...overrides,
  };
}

/** Deterministic values in [-1, 1) that are exact in f16. */
function values(n: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(((s >>> 8) % 2048) / 1024 - 1);
  }
  return out;
}

/** Every tensor a checkpoint of `config` (smallConfigJson form) needs, as f16 (norms as f32). */
export function syntheticLlamaTensors(config: Record<string, unknown>, options: { lmHead?: boolean } = {}): RawTensor[] {
  const V = config.vocab_size as number;
  const H = config.hidden_size as number;
  const I = config.intermediate_size as number;
  const hd = config.head_dim as number;
  const q = (config.num_attention_heads as number) * hd;
  const kv = (config.num_key_value_heads as number) * hd;
  let seed = 1;
  const half = (name: string, shape: number[]): RawTensor => ({
    name,
    dtype: 'F16',
    shape,
    data: f16Bytes(
      values(
        shape.reduce((a, b) => a * b, 1),
        seed++,
      ),
    ),
  });
  const single = (name: string, shape: number[]): RawTensor => ({
    name,
    dtype: 'F32',
    shape,
    data: f32Bytes(
      values(
        shape.reduce((a, b) => a * b, 1),
        seed++,
      ),
    ),
  });
  const tensors: RawTensor[] = [half('model.embed_tokens.weight', [V, H])];
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      single(`${p}input_layernorm.weight`, [H]),
      half(`${p}self_attn.q_proj.weight`, [q, H]),
      half(`${p}self_attn.k_proj.weight`, [kv, H]),
      half(`${p}self_attn.v_proj.weight`, [kv, H]),
      half(`${p}self_attn.o_proj.weight`, [H, q]),
      single(`${p}post_attention_layernorm.weight`, [H]),
      half(`${p}mlp.gate_proj.weight`, [I, H]),
      half(`${p}mlp.up_proj.weight`, [I, H]),
      half(`${p}mlp.down_proj.weight`, [H, I]),
    );
  }
  tensors.push(single('model.norm.weight', [H]));
  if (options.lmHead ?? true) tensors.push(half('lm_head.weight', [V, H]));
  return tensors;
}

/** Writes a synthetic model folder (config.json + model.safetensors) and returns its path. */
export function writeSyntheticModel(
  config: Record<string, unknown> = smallConfigJson(),
  tensors: readonly RawTensor[] = syntheticLlamaTensors(config),
): string {
  const dir = makeTmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

/**
 * Copies the bundled model's small files to a temporary folder; model.safetensors is
 * symlinked unless `weights` is false. `edit` may change or delete files afterwards.
 */
export function copyTinyModel(options: { weights?: boolean } = {}): string {
  const dir = makeTmpDir();
  for (const name of fs.readdirSync(TINY_MODEL_DIR)) {
    const src = path.join(TINY_MODEL_DIR, name);
    if (name === 'model.safetensors') {
      if (options.weights ?? true) fs.symlinkSync(src, path.join(dir, name));
    } else {
      fs.copyFileSync(src, path.join(dir, name));
    }
  }
  return dir;
}

export function editJson(file: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

/** Asserts that `fn` throws an ArkvaleError with `code` whose message contains every fragment. */
export function expectArkvaleError(fn: () => unknown, code: ArkvaleErrorCode, ...fragments: string[]): ArkvaleError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  return checkError(caught, code, fragments);
}

export async function expectArkvaleErrorAsync(fn: () => Promise<unknown>, code: ArkvaleErrorCode, ...fragments: string[]): Promise<ArkvaleError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  return checkError(caught, code, fragments);
}

function checkError(caught: unknown, code: ArkvaleErrorCode, fragments: string[]): ArkvaleError {
  expect(caught, 'expected an error').toBeInstanceOf(ArkvaleError);
  const err = caught as ArkvaleError;
  expect(err.code, err.message).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}
