import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import { SafetensorsCheckpoint, readSafetensorsHeader } from './safetensors.js';
import {
  TINY_MODEL_DIR,
  expectArkvaleError,
  f16Bytes,
  f32Bytes,
  makeTmpDir,
  removeTmpDirs,
  writeSafetensors,
  writeSafetensorsRaw,
  type RawTensor,
} from './test-support/fixtures.js';

afterAll(removeTmpDirs);

const A: RawTensor = { name: 'a', dtype: 'F32', shape: [2, 3], data: f32Bytes([1, 2, 3, 4, 5, 6]) };
const B: RawTensor = { name: 'b', dtype: 'F16', shape: [4], data: f16Bytes([0.5, -1, 2, 65504]) };
const C: RawTensor = { name: 'c', dtype: 'BF16', shape: [2], data: new Uint8Array([0x80, 0x3f, 0x00, 0xc0]) }; // 1, -2

function file(tensors: RawTensor[] = [A, B, C], edit?: (h: Record<string, unknown>) => void): string {
  const f = path.join(makeTmpDir(), 'model.safetensors');
  writeSafetensors(f, tensors, edit);
  return f;
}

describe('readSafetensorsHeader', () => {
  it('parses dtypes, shapes, absolute offsets and metadata', () => {
    const f = file();
    const h = readSafetensorsHeader(f);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.map((t) => [t.name, t.dtype, t.shape, t.byteLength])).toEqual([
      ['a', 'f32', [2, 3], 24],
      ['b', 'f16', [4], 8],
      ['c', 'bf16', [2], 4],
    ]);
    expect(h.tensors[0].offset).toBe(h.dataOffset);
    expect(h.tensors[1].offset).toBe(h.dataOffset + 24);
    expect(h.fileSize).toBe(h.dataOffset + 36);
  });

  it('reads the bundled checkpoint header', () => {
    const h = readSafetensorsHeader(path.join(TINY_MODEL_DIR, 'model.safetensors'));
    expect(h.tensors.length).toBe(2 + 4 * 9 + 1);
    expect(new Set(h.tensors.map((t) => t.dtype))).toEqual(new Set(['f16']));
  });

  it('names a missing file', () => {
    const f = path.join(makeTmpDir(), 'nope.safetensors');
    expectArkvaleError(() => readSafetensorsHeader(f), 'MODEL_FILE', f, 'not found');
  });

  it('rejects a truncated file, naming the file and the tensor that runs past the end', () => {
    const f = file();
    const bytes = fs.readFileSync(f);
    fs.writeFileSync(f, bytes.subarray(0, bytes.length - 3));
    expectArkvaleError(() => readSafetensorsHeader(f), 'MODEL_FILE', f, 'truncated', '"c"');
    // A real checkpoint cut in the middle.
    const real = path.join(makeTmpDir(), 'model.safetensors');
    const fd = fs.openSync(path.join(TINY_MODEL_DIR, 'model.safetensors'), 'r');
    const head = Buffer.alloc(1 << 20);
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    fs.writeFileSync(real, head);
    const err = expectArkvaleError(() => readSafetensorsHeader(real), 'MODEL_FILE', real, 'truncated');
    expect(err.message).toMatch(/tensor "[\w.]+" runs to byte \d+/);
  });

  it('rejects a header length beyond the file', () => {
    const f = file();
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 20));
    expectArkvaleError(() => readSafetensorsHeader(f), 'MODEL_FILE', f, 'header length');
    const tiny = path.join(makeTmpDir(), 'x.safetensors');
    fs.writeFileSync(tiny, Buffer.from([1, 2, 3]));
    expectArkvaleError(() => readSafetensorsHeader(tiny), 'MODEL_FILE', tiny);
  });

  it('rejects a corrupt header JSON', () => {
    const f = path.join(makeTmpDir(), 'model.safetensors');
    writeSafetensorsRaw(f, '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', [f32Bytes([1])]);
    expectArkvaleError(() => readSafetensorsHeader(f), 'MODEL_FILE', f, 'not valid JSON');
    writeSafetensorsRaw(f, '[1, 2]', []);
    expectArkvaleError(() => readSafetensorsHeader(f), 'MODEL_FILE', f, 'JSON object');
  });

  it('rejects unsupported dtypes, naming the tensor and the dtype', () => {
    const ids: RawTensor = { name: 'position_ids', dtype: 'I64', shape: [2], data: new Uint8Array(16) };
    const f = file([A, ids]);
    expectArkvaleError(() => readSafetensorsHeader(f), 'MODEL_FILE', f, '"position_ids"', 'I64');
  });

  it('rejects data_offsets inconsistent with shape x dtype, and bad shapes', () => {
    const f1 = file([A, B], (h) => {
      (h.b as { shape: number[] }).shape = [5];
    });
    expectArkvaleError(() => readSafetensorsHeader(f1), 'MODEL_FILE', f1, '"b"', 'needs 10');
    const f2 = file([A], (h) => {
      (h.a as { data_offsets: number[] }).data_offsets = [8, 4];
    });
    expectArkvaleError(() => readSafetensorsHeader(f2), 'MODEL_FILE', f2, '"a"', 'data_offsets');
    const f3 = file([A], (h) => {
      (h.a as { shape: unknown }).shape = [2, -3];
    });
    expectArkvaleError(() => readSafetensorsHeader(f3), 'MODEL_FILE', f3, '"a"', 'shape');
  });
});

describe('SafetensorsCheckpoint', () => {
  it('reads each tensor at its offset into its own aligned buffer', () => {
    const f = file();
    const ckpt = SafetensorsCheckpoint.openFile(f);
    try {
      const b = ckpt.readBytes('b');
      expect(b.byteOffset).toBe(0);
      expect(Array.from(b)).toEqual(Array.from(B.data));
      const backend = new ReferenceBackend();
      expect(Array.from(backend.readSync(ckpt.load('a', backend)))).toEqual([1, 2, 3, 4, 5, 6]);
      expect(Array.from(backend.readSync(ckpt.load('b', backend)))).toEqual([0.5, -1, 2, 65504]);
      expect(Array.from(backend.readSync(ckpt.load('c', backend)))).toEqual([1, -2]);
      expect(ckpt.load('c', backend).shape).toEqual([2]);
      expectArkvaleError(() => ckpt.get('zzz'), 'MODEL_FILE', '"zzz"', f);
    } finally {
      ckpt.close();
    }
  });

  it('opens a folder and explains a missing checkpoint', () => {
    const dir = makeTmpDir();
    expectArkvaleError(() => SafetensorsCheckpoint.open(dir), 'MODEL_FILE', dir, 'model.safetensors');
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
    expectArkvaleError(() => SafetensorsCheckpoint.open(dir), 'MODEL_FILE', 'pytorch_model.bin');
  });

  it('reads sharded checkpoints through the index', () => {
    const dir = makeTmpDir();
    writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [A, B]);
    writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [C]);
    const index = {
      metadata: { total_size: 36 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    };
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const ckpt = SafetensorsCheckpoint.open(dir);
    expect(ckpt.files.map((f) => path.basename(f))).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ckpt.names().sort()).toEqual(['a', 'b', 'c']);
    expect(Array.from(ckpt.readBytes('c'))).toEqual(Array.from(C.data));
    ckpt.close();
  });

  it('names the index, shard and tensor when a sharded checkpoint is broken', () => {
    const dir = makeTmpDir();
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    writeSafetensors(path.join(dir, 'shard1.safetensors'), [A]);
    fs.writeFileSync(indexFile, JSON.stringify({ weight_map: { a: 'shard1.safetensors', b: 'shard2.safetensors' } }));
    expectArkvaleError(() => SafetensorsCheckpoint.open(dir), 'MODEL_FILE', path.join(dir, 'shard2.safetensors'), '"b"');
    fs.writeFileSync(indexFile, JSON.stringify({ weight_map: { a: 'shard1.safetensors', b: 'shard1.safetensors' } }));
    expectArkvaleError(() => SafetensorsCheckpoint.open(dir), 'MODEL_FILE', indexFile, '"b"', 'no such tensor');
    fs.writeFileSync(indexFile, JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
    expectArkvaleError(() => SafetensorsCheckpoint.open(dir), 'MODEL_FILE', indexFile);
    fs.writeFileSync(indexFile, '{ nope');
    expectArkvaleError(() => SafetensorsCheckpoint.open(dir), 'MODEL_FILE', indexFile, 'not valid JSON');
  });
});
