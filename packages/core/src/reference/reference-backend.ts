import type {
  Backend,
  CausalAttentionArgs,
  CopyTicket,
  DigestStorage,
  KvStorage,
  PagedAttentionArgs,
  PoolLocation,
  RopeSpec,
  RopeTable,
  SamplingParams,
  PendingRead,
  SelectAttendArgs,
  SelectAttendResult,
  SelectResidentArgs,
  SelectResidentResult,
  Tensor,
  PlaceTokenCellsArgs,
  EvictTokenCellsArgs,
} from '../backend.js';
import type { DigestVariant, KvGeometry } from '../config.js';
import { invalidArgument } from '../errors.js';
import { causalAttention, pagedAttention } from './attention.js';
import * as dense from './dense.js';
import { decodeFloats } from './half.js';
import * as kv from './kv.js';
import * as selection from './select-resident.js';
import * as tokenCells from './token-cells.js';
import { RefTensor, asRef, rowSize } from './tensor.js';

function asKv(s: KvStorage): kv.RefPageStorage {
  if (!(s instanceof kv.RefKvStorage || s instanceof kv.RefFp8KvStorage)) throw invalidArgument('KV storage does not belong to the reference backend');
  return s;
}
function asDigests(s: DigestStorage): kv.RefDigestStorage {
  if (!(s instanceof kv.RefDigestStorage)) throw invalidArgument('digest storage does not belong to the reference backend');
  return s;
}

/**
 * The oracle: every operation in plain TypeScript over float32 typed arrays, written
 * for clarity, not speed. Copies complete synchronously, so tickets are only counted.
 */
export class ReferenceBackend implements Backend {
  readonly name: string = 'reference';
  readonly dtype = 'f32' as const;
  private tickets = 0;

  tidy<T>(fn: () => T): T {
    // Tensors are plain typed arrays: the garbage collector frees them.
    return fn();
  }
  keep<T extends Tensor>(t: T): T {
    return t;
  }

  fromArray(data: ArrayLike<number>, shape: readonly number[], dtype: 'f32' | 'i32' = 'f32'): Tensor {
    return new RefTensor(dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data), [...shape], dtype);
  }
  fromBytes(bytes: Uint8Array, shape: readonly number[], dtype: 'f32' | 'f16' | 'bf16'): Tensor {
    return new RefTensor(decodeFloats(bytes, dtype), [...shape], 'f32');
  }
  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return this.readSync(t);
  }
  readSync(t: Tensor): Float32Array | Int32Array {
    return asRef(t).data.slice();
  }
  readLater(t: Tensor): PendingRead {
    // Not through readSync: what a step reads now and what it reads later are told apart (tests count readSync).
    const data = asRef(t).data.slice();
    return { get: () => data };
  }
  dispose(_t: Tensor): void {
    // Garbage collected.
  }
  copyInto(dst: Tensor, src: Tensor): void {
    const d = asRef(dst),
      r = asRef(src);
    if (d.dtype !== r.dtype || d.data.length !== r.data.length)
      throw invalidArgument(`copyInto: a [${r.shape.join(', ')}] ${r.dtype} tensor over a [${d.shape.join(', ')}] ${d.dtype} one`);
    d.data.set(r.data);
  }
  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const r = asRef(t);
    return new RefTensor(r.data, [...shape], r.dtype);
  }
  sliceRows(t: Tensor, start: number, count: number): Tensor {
    const r = asRef(t);
    const size = rowSize(r);
    if (start < 0 || count < 0 || start + count > r.shape[0]) throw invalidArgument(`sliceRows: rows ${start}..${start + count} outside 0..${r.shape[0]}`);
    return new RefTensor(r.data.slice(start * size, (start + count) * size), [count, ...r.shape.slice(1)], r.dtype);
  }
  concatRows(parts: readonly Tensor[]): Tensor {
    const refs = parts.map(asRef);
    if (refs.length === 0) throw invalidArgument('concatRows: nothing to concatenate');
    const total = refs.reduce((n, r) => n + r.data.length, 0);
    const data = refs[0].dtype === 'i32' ? new Int32Array(total) : new Float32Array(total);
    let off = 0;
    for (const r of refs) {
      data.set(r.data, off);
      off += r.data.length;
    }
    const rows = refs.reduce((n, r) => n + r.shape[0], 0);
    return new RefTensor(data, [rows, ...refs[0].shape.slice(1)], refs[0].dtype);
  }

  matmul(x: Tensor, w: Tensor, _outDtype?: 'f32'): Tensor {
    return dense.matmul(asRef(x), asRef(w));
  }
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    return dense.rmsNorm(asRef(x), asRef(weight), eps);
  }
  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number): [Tensor, Tensor] {
    const sum = this.add(a, b);
    return [sum, this.rmsNorm(sum, weight, eps)];
  }

  createRopeTable(spec: RopeSpec): RopeTable {
    return new dense.RefRopeTable(spec);
  }
  ropeQkv(qkv: Tensor, positions: Tensor, table: RopeTable, numHeads: number, numKvHeads: number): [Tensor, Tensor, Tensor] {
    if (!(table instanceof dense.RefRopeTable)) throw invalidArgument('rope table does not belong to the reference backend');
    const [q, k, v] = dense.splitQkv(asRef(qkv), numHeads, numKvHeads, table.headDim);
    const pos = asRef(positions);
    return [dense.rope(q, pos, table), dense.rope(k, pos, table), v];
  }
  siluGatePacked(gateUp: Tensor): Tensor {
    const x = asRef(gateUp);
    const width = x.shape[1] / 2;
    if (x.shape.length !== 2 || !Number.isInteger(width)) throw invalidArgument(`siluGatePacked: gateUp must be [T, 2I], got [${x.shape.join(', ')}]`);
    const [gate, up] = dense.splitColumns(x, [width, width]);
    return dense.siluGate(gate, up);
  }
  add(a: Tensor, b: Tensor): Tensor {
    return dense.add(asRef(a), asRef(b));
  }
  gatherRows(t: Tensor, indices: Tensor): Tensor {
    return dense.gatherRows(asRef(t), asRef(indices));
  }

  createKvStorage(location: PoolLocation, slots: number, geometry: KvGeometry): KvStorage {
    return geometry.kvDtype === 'fp8' ? new kv.RefFp8KvStorage(location, slots, geometry) : new kv.RefKvStorage(location, slots, geometry);
  }
  createDigestStorage(rows: number, geometry: KvGeometry): DigestStorage {
    return new kv.RefDigestStorage(rows, geometry);
  }
  freeStorage(_storage: KvStorage | DigestStorage): void {
    // Garbage collected.
  }
  appendKv(storage: KvStorage, k: Tensor, v: Tensor, slots: Tensor, offsets: Tensor): void {
    kv.appendKv(asKv(storage), asRef(k), asRef(v), asRef(slots), asRef(offsets));
  }
  digestPages(storage: KvStorage, slots: Tensor, digests: DigestStorage, rows: Tensor, variant: DigestVariant): void {
    kv.digestPages(asKv(storage), asRef(slots), asDigests(digests), asRef(rows), variant);
  }
  estimate(q: Tensor, digests: DigestStorage, rows: Tensor, groups: number, variant: DigestVariant): Tensor {
    return kv.estimate(asRef(q), asDigests(digests), asRef(rows), groups, variant);
  }
  scatterI32(target: Tensor, updates: Tensor): void {
    selection.scatterI32(asRef(target), asRef(updates));
  }
  selectResident(args: SelectResidentArgs): SelectResidentResult {
    return selection.selectResident(args, asRef(args.q), asDigests(args.digests), asRef(args.tables), asRef(args.rows));
  }
  selectAttend(args: SelectAttendArgs): SelectAttendResult {
    return selection.selectAttend(args, asRef(args.q), asDigests(args.digests), asRef(args.tables), asRef(args.rows));
  }
  placeTokenCells(args: PlaceTokenCellsArgs): void {
    tokenCells.placeTokenCells(args);
  }
  evictTokenCells(args: EvictTokenCellsArgs): Tensor {
    return tokenCells.evictTokenCells(args);
  }
  recallListed(host: KvStorage, device: KvStorage, copies: Tensor): void {
    selection.recallListed(asKv(host), asKv(device), asRef(copies));
  }
  copyPages(src: KvStorage, srcSlots: readonly number[], dst: KvStorage, dstSlots: readonly number[]): CopyTicket {
    kv.copyPages(asKv(src), srcSlots, asKv(dst), dstSlots);
    return { id: ++this.tickets };
  }
  awaitCopy(_ticket: CopyTicket): void {
    // Copies finished when copyPages returned.
  }
  pagedAttention(args: PagedAttentionArgs): { out: Tensor; tokenScores?: Tensor } {
    return pagedAttention(args, asKv(args.storage));
  }
  causalAttention(args: CausalAttentionArgs): { out: Tensor; keyScores?: Tensor } {
    return causalAttention(asRef(args.q), asRef(args.k), asRef(args.v), args.scale, args.keyScores);
  }

  argmax(logits: Tensor): Tensor {
    return dense.argmax(asRef(logits));
  }
  sample(logits: Tensor, params: SamplingParams, uniforms: Tensor): Tensor {
    return dense.sample(asRef(logits), params, asRef(uniforms));
  }
}
