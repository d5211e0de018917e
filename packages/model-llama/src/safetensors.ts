import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArkvaleError, type Backend, type Tensor } from '@arkvale/core';
import { describeJson, errorMessage, fileReadError, isFile, readJsonObject } from './files.js';

/** Weight dtypes a Backend accepts (`Backend.fromBytes`). */
export type WeightDType = 'f32' | 'f16' | 'bf16';

/** One tensor of a checkpoint: where its bytes are and what they hold. */
export interface TensorEntry {
  readonly name: string;
  /** Absolute path of the file holding the tensor. */
  readonly file: string;
  readonly dtype: WeightDType;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in `file`. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  /** Offset of the data buffer (8 + header length). */
  readonly dataOffset: number;
  /** The optional `__metadata__` string map. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly TensorEntry[];
}

const SUPPORTED_DTYPES: Record<string, { dtype: WeightDType; size: number }> = {
  F32: { dtype: 'f32', size: 4 },
  F16: { dtype: 'f16', size: 2 },
  BF16: { dtype: 'bf16', size: 2 },
};

/** safetensors itself refuses headers above 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;
/** fs.read moves at most 2 GiB per call. */
const MAX_READ_CHUNK = 1 << 30;

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

function fileError(message: string): ArkvaleError {
  return new ArkvaleError('MODEL_FILE', message);
}

function readExactly(fd: number, file: string, length: number, position: number, what: string): Buffer {
  if (length > bufferConstants.MAX_LENGTH) {
    throw fileError(`${what} in ${file} is ${length} bytes, more than one Node.js buffer can hold (${bufferConstants.MAX_LENGTH})`);
  }
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, done, Math.min(length - done, MAX_READ_CHUNK), position + done);
    } catch (e) {
      throw fileError(`cannot read ${what} from ${file}: ${errorMessage(e)}`);
    }
    if (n === 0) throw fileError(`${file} is truncated: ${what} ends at byte ${position + length}, the file ends at byte ${position + done}`);
    done += n;
  }
  return buf;
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Reads and validates the header of one `.safetensors` file without touching the
 * tensor data: the 8-byte little-endian header length, the JSON header, every
 * tensor's dtype (F16, BF16 or F32), shape and data_offsets (inside the file, and
 * exactly shape x dtype size long). Errors are ArkvaleError('MODEL_FILE') naming the
 * file and, where one is at fault, the tensor.
 */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const abs = path.resolve(file);
  let fd: number;
  try {
    fd = fs.openSync(abs, 'r');
  } catch (e) {
    throw fileReadError(abs, e, 'safetensors file');
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) throw fileError(`${abs} is not a safetensors file: only ${fileSize} bytes, shorter than the 8-byte header length`);
    const headerLength = Number(readExactly(fd, abs, 8, 0, 'the header length').readBigUInt64LE(0));
    if (headerLength > fileSize - 8) {
      throw fileError(`${abs} is truncated or not a safetensors file: the header length field says ${headerLength} bytes but only ${fileSize - 8} follow it`);
    }
    if (headerLength > MAX_HEADER_BYTES) throw fileError(`${abs}: header of ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const dataOffset = 8 + headerLength;
    const text = readExactly(fd, abs, headerLength, 8, 'the header').toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw fileError(`${abs}: the safetensors header is not valid JSON: ${errorMessage(e)}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw fileError(`${abs}: the safetensors header must be a JSON object, got ${describeJson(json)}`);
    }
    return parseHeader(json as Record<string, unknown>, abs, fileSize, dataOffset);
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(json: Record<string, unknown>, file: string, fileSize: number, dataOffset: number): SafetensorsHeader {
  const metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
        for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}" in ${file}`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw fileError(`${where}: header entry must be an object, got ${describeJson(raw)}`);
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string') throw fileError(`${where}: missing or invalid "dtype" (${describeJson(dtype)})`);
    const supported = SUPPORTED_DTYPES[dtype];
    if (supported === undefined) {
      throw fileError(`${where} has dtype ${dtype}, which is not supported (expected F16, BF16 or F32)`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      throw fileError(`${where}: "shape" must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt) || offsets[0] > offsets[1]) {
      throw fileError(`${where}: "data_offsets" must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const elements = shape.reduce((a: number, b: number) => a * b, 1);
    const expected = elements * supported.size;
    if (end - begin !== expected) {
      throw fileError(`${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${expected}`);
    }
    if (dataOffset + end > fileSize) {
      throw fileError(`${file} is truncated: tensor "${name}" runs to byte ${dataOffset + end}, past the end of the file (${fileSize} bytes)`);
    }
    tensors.push({ name, file, dtype: supported.dtype, shape: [...shape], offset: dataOffset + begin, byteLength: expected });
  }
  return { file, fileSize, dataOffset, metadata, tensors };
}

/**
 * A safetensors checkpoint: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json`. Opening reads only the headers; tensor bytes are read
 * on demand, one tensor at a time, at their offsets.
 */
export class SafetensorsCheckpoint {
  private readonly entries: ReadonlyMap<string, TensorEntry>;
  private readonly fds = new Map<string, number>();

  private constructor(
    /** The folder, or the file for a checkpoint opened with `openFile`. */
    readonly location: string,
    /** Absolute paths of the files, in index order. */
    readonly files: readonly string[],
    entries: Map<string, TensorEntry>,
  ) {
    this.entries = entries;
  }

  /** Opens `dir/model.safetensors`, or else the shards of `dir/model.safetensors.index.json`. */
  static open(dir: string): SafetensorsCheckpoint {
    const abs = path.resolve(dir);
    const single = path.join(abs, SINGLE_FILE_NAME);
    if (isFile(single)) return SafetensorsCheckpoint.openFile(single);
    const index = path.join(abs, INDEX_FILE_NAME);
    if (isFile(index)) return SafetensorsCheckpoint.openIndex(index);
    const bin = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((n) => isFile(path.join(abs, n)));
    throw fileError(
      `no safetensors checkpoint in ${abs}: expected ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}` + (bin ? ` (found ${bin}; convert it to safetensors)` : ''),
    );
  }

  static openFile(file: string): SafetensorsCheckpoint {
    const header = readSafetensorsHeader(file);
    return new SafetensorsCheckpoint(header.file, [header.file], new Map(header.tensors.map((t) => [t.name, t])));
  }

  /** Opens a sharded checkpoint from its index (`weight_map`: tensor name -> shard file). */
  static openIndex(indexFile: string): SafetensorsCheckpoint {
    const abs = path.resolve(indexFile);
    const dir = path.dirname(abs);
    const index = readJsonObject(abs);
    const weightMap = index.weight_map;
    if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
      throw fileError(`${abs}: "weight_map" must be an object mapping tensor names to shard files, got ${describeJson(weightMap)}`);
    }
    const headers = new Map<string, Map<string, TensorEntry>>();
    const entries = new Map<string, TensorEntry>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard === '') {
        throw fileError(`${abs}: weight_map entry for tensor "${name}" must be a file name, got ${describeJson(shard)}`);
      }
      const shardPath = path.resolve(dir, shard);
      if (path.dirname(shardPath) !== dir) {
        throw fileError(`${abs}: shard "${shard}" of tensor "${name}" must be a file in ${dir}`);
      }
      let tensors = headers.get(shardPath);
      if (tensors === undefined) {
        if (!isFile(shardPath)) throw fileError(`shard file not found: ${shardPath} (listed in ${abs} for tensor "${name}")`);
        tensors = new Map(readSafetensorsHeader(shardPath).tensors.map((t) => [t.name, t]));
        headers.set(shardPath, tensors);
      }
      const entry = tensors.get(name);
      if (entry === undefined) {
        throw fileError(`${abs} maps tensor "${name}" to ${shardPath}, but that shard has no such tensor`);
      }
      entries.set(name, entry);
    }
    return new SafetensorsCheckpoint(dir, [...headers.keys()], entries);
  }

  get size(): number {
    return this.entries.size;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The tensor's entry, or undefined. */
  find(name: string): TensorEntry | undefined {
    return this.entries.get(name);
  }

  /** The tensor's entry; a MODEL_FILE error naming the tensor and the checkpoint when absent. */
  get(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw fileError(`checkpoint ${this.location} has no tensor "${name}"`);
    return e;
  }

  /** Reads one tensor's bytes into a fresh buffer of its own (offset 0, aligned). */
  readBytes(nameOrEntry: string | TensorEntry): Uint8Array {
    const e = typeof nameOrEntry === 'string' ? this.get(nameOrEntry) : nameOrEntry;
    const buf = readExactly(this.fd(e.file), e.file, e.byteLength, e.offset, `tensor "${e.name}"`);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Reads one tensor and hands it to `backend.fromBytes`; the read buffer is dropped afterwards. */
  load(nameOrEntry: string | TensorEntry, backend: Backend): Tensor {
    const e = typeof nameOrEntry === 'string' ? this.get(nameOrEntry) : nameOrEntry;
    return backend.fromBytes(this.readBytes(e), e.shape, e.dtype);
  }

  /** Closes the files opened by reads (the checkpoint can still read afterwards; it reopens them). */
  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = fs.openSync(file, 'r');
      } catch (e) {
        throw fileReadError(file, e, 'safetensors file');
      }
      this.fds.set(file, fd);
    }
    return fd;
  }
}
