import type { DigestStorage, KvStorage, PoolLocation } from '../backend.js';
import { type DigestVariant, type KvGeometry, fp8ScaleOffset, pageBytes } from '../config.js';
import { computeDigest, estimateScore } from '../digest.js';
import { invalidArgument } from '../errors.js';
import { dequantizeHead, quantizeHead } from '../kv-fp8.js';
import { RefTensor, f32 } from './tensor.js';

/** A page pool's storage: [slot][K|V][kvHead][token][dim] float32. */
export class RefKvStorage implements KvStorage {
  readonly data: Float32Array;
  readonly pageElems: number;
  readonly headElems: number;
  constructor(
    readonly location: PoolLocation,
    readonly slots: number,
    readonly geometry: KvGeometry,
  ) {
    this.headElems = geometry.pageSize * geometry.headDim;
    this.pageElems = 2 * geometry.numKvHeads * this.headElems;
    this.data = new Float32Array(slots * this.pageElems);
  }

  /** Offset of (slot, K=0|V=1, kvHead, token). */
  offset(slot: number, kv: 0 | 1, head: number, token: number): number {
    if (slot < 0 || slot >= this.slots) throw invalidArgument(`${this.location} slot ${slot} outside 0..${this.slots - 1}`);
    return slot * this.pageElems + (kv * this.geometry.numKvHeads + head) * this.headElems + token * this.geometry.headDim;
  }
}

/**
 * An fp8 page pool (`geometry.kvDtype === 'fp8'`), in the bytes every backend stores:
 * each slot of `pageBytes(geometry)` holds the e4m3 codes [K|V][kvHead][token][dim],
 * then at `scaleBase` the scale bytes [K|V][kvHead][token] (kv-fp8.ts), then padding.
 */
export class RefFp8KvStorage implements KvStorage {
  readonly bytes: Uint8Array;
  readonly pageBytes: number;
  /** Offset of the scale bytes in a slot. */
  readonly scaleBase: number;
  constructor(
    readonly location: PoolLocation,
    readonly slots: number,
    readonly geometry: KvGeometry,
  ) {
    if (geometry.kvDtype !== 'fp8') throw invalidArgument('RefFp8KvStorage needs a geometry with kvDtype "fp8"');
    this.pageBytes = pageBytes(geometry);
    this.scaleBase = fp8ScaleOffset(geometry);
    this.bytes = new Uint8Array(slots * this.pageBytes);
  }

  private row(slot: number, kv: 0 | 1, head: number, token: number): number {
    if (slot < 0 || slot >= this.slots) throw invalidArgument(`${this.location} slot ${slot} outside 0..${this.slots - 1}`);
    return (kv * this.geometry.numKvHeads + head) * this.geometry.pageSize + token;
  }

  /** Byte offset of the codes of (slot, K=0|V=1, kvHead, token). */
  codeOffset(slot: number, kv: 0 | 1, head: number, token: number): number {
    return slot * this.pageBytes + this.row(slot, kv, head, token) * this.geometry.headDim;
  }

  /** Byte offset of the scale byte of (slot, K=0|V=1, kvHead, token). */
  scaleOffset(slot: number, kv: 0 | 1, head: number, token: number): number {
    return slot * this.pageBytes + this.scaleBase + this.row(slot, kv, head, token);
  }
}

/** The page pools of the reference backend (and of the CPU backend, which shares them). */
export type RefPageStorage = RefKvStorage | RefFp8KvStorage;

/** The values (dequantized for fp8) of one token's K (0) or V (1) of one KV head, into `out` (a new array by default). */
export function readKvRow(s: RefPageStorage, slot: number, kv: 0 | 1, head: number, token: number, out = new Float32Array(s.geometry.headDim)): Float32Array {
  const d = s.geometry.headDim;
  if (s instanceof RefKvStorage) {
    const at = s.offset(slot, kv, head, token);
    out.set(s.data.subarray(at, at + d));
    return out;
  }
  dequantizeHead(s.bytes, s.codeOffset(slot, kv, head, token), d, s.bytes[s.scaleOffset(slot, kv, head, token)], out, 0);
  return out;
}

/** Dequantizes page `slot` of an fp8 pool into page `dstSlot` of a float32 pool of the same shape. */
function dequantizePage(src: RefFp8KvStorage, slot: number, dst: RefKvStorage, dstSlot: number): void {
  const { numKvHeads: h, pageSize, headDim: d } = src.geometry;
  let code = src.codeOffset(slot, 0, 0, 0);
  let scale = src.scaleOffset(slot, 0, 0, 0);
  let out = dst.offset(dstSlot, 0, 0, 0);
  // Rows in the same order in both: [K|V][kvHead][token].
  for (let r = 0; r < 2 * h * pageSize; r++, code += d, scale++, out += d) dequantizeHead(src.bytes, code, d, src.bytes[scale], dst.data, out);
}

/**
 * The pages an attention call lists, dequantized: a float32 pool of just those slots
 * (each once) and the page table renumbered into it. Lists whose page count is out of
 * range are left as they are (the attention that follows refuses them); a listed slot
 * outside the pool throws, as attention would. Attention over the result is attention
 * over the fp8 pages, bit for bit: the same code reads the same values.
 */
export function gatherDequantized(storage: RefFp8KvStorage, pageTable: RefTensor, pageCounts: RefTensor): { storage: RefKvStorage; pageTable: RefTensor } {
  const [b, g, maxPages] = pageTable.shape;
  const table = Int32Array.from(pageTable.i32);
  const renumbered = new Map<number, number>();
  for (let l = 0; l < b * g; l++) {
    const pages = pageCounts.i32[l];
    if (!(pages >= 1 && pages <= maxPages)) continue;
    for (let p = 0; p < pages; p++) {
      const slot = table[l * maxPages + p];
      let into = renumbered.get(slot);
      if (into === undefined) {
        storage.codeOffset(slot, 0, 0, 0); // range check
        into = renumbered.size;
        renumbered.set(slot, into);
      }
      table[l * maxPages + p] = into;
    }
  }
  const { kvDtype: _fp8, ...f32Geometry } = storage.geometry;
  const out = new RefKvStorage(storage.location, Math.max(1, renumbered.size), f32Geometry);
  for (const [slot, into] of renumbered) dequantizePage(storage, slot, out, into);
  return { storage: out, pageTable: new RefTensor(table, [...pageTable.shape], 'i32') };
}

export class RefDigestStorage implements DigestStorage {
  readonly data: Float32Array;
  constructor(
    readonly rows: number,
    readonly geometry: KvGeometry,
  ) {
    this.data = new Float32Array(rows * geometry.numKvHeads * 2 * geometry.headDim);
  }
  offset(row: number, head: number): number {
    if (row < 0 || row >= this.rows) throw invalidArgument(`digest row ${row} outside 0..${this.rows - 1}`);
    return (row * this.geometry.numKvHeads + head) * 2 * this.geometry.headDim;
  }
}

export function appendKv(s: RefPageStorage, k: RefTensor, v: RefTensor, slots: RefTensor, offsets: RefTensor): void {
  const { numKvHeads: h, headDim: d, pageSize } = s.geometry;
  const t = slots.data.length;
  if (k.data.length !== t * h * d || v.data.length !== t * h * d) {
    throw invalidArgument(`appendKv: k/v must be [${t}, ${h}, ${d}], got [${k.shape}] and [${v.shape}]`);
  }
  for (let i = 0; i < t; i++) {
    const off = offsets.i32[i];
    if (off < 0 || off >= pageSize) throw invalidArgument(`appendKv: offset ${off} outside the page (size ${pageSize})`);
    for (let j = 0; j < h; j++) {
      const src = (i * h + j) * d;
      if (s instanceof RefKvStorage) {
        s.data.set(k.f32.subarray(src, src + d), s.offset(slots.i32[i], 0, j, off));
        s.data.set(v.f32.subarray(src, src + d), s.offset(slots.i32[i], 1, j, off));
        continue;
      }
      // fp8: each token's row of each head is quantized on its own (its own scale byte), whatever else the page holds.
      s.bytes[s.scaleOffset(slots.i32[i], 0, j, off)] = quantizeHead(k.f32, src, d, s.bytes, s.codeOffset(slots.i32[i], 0, j, off));
      s.bytes[s.scaleOffset(slots.i32[i], 1, j, off)] = quantizeHead(v.f32, src, d, s.bytes, s.codeOffset(slots.i32[i], 1, j, off));
    }
  }
}

/** Digests of full pages: of the stored keys, dequantized for fp8 (digests stay float32). */
export function digestPages(s: RefPageStorage, slots: RefTensor, digests: RefDigestStorage, rows: RefTensor, variant: DigestVariant): void {
  const { numKvHeads: h, headDim: d, pageSize } = s.geometry;
  const scratch = s instanceof RefFp8KvStorage ? new Float32Array(pageSize * d) : null;
  for (let i = 0; i < slots.data.length; i++) {
    for (let j = 0; j < h; j++) {
      let keys: Float32Array;
      if (s instanceof RefKvStorage) {
        const start = s.offset(slots.i32[i], 0, j, 0);
        keys = s.data.subarray(start, start + pageSize * d);
      } else {
        keys = scratch!;
        const code = s.codeOffset(slots.i32[i], 0, j, 0);
        const scale = s.scaleOffset(slots.i32[i], 0, j, 0);
        for (let t = 0; t < pageSize; t++) dequantizeHead(s.bytes, code + t * d, d, s.bytes[scale + t], keys, t * d);
      }
      computeDigest(keys, pageSize, d, variant, digests.data, digests.offset(rows.i32[i], j));
    }
  }
}

export function estimate(q: RefTensor, digests: RefDigestStorage, rows: RefTensor, groups: number, variant: DigestVariant): RefTensor {
  const { numHeads, numKvHeads, headDim: d } = digests.geometry;
  if (q.data.length !== numHeads * d) throw invalidArgument(`estimate: q must be [${numHeads}, ${d}], got [${q.shape}]`);
  if (numHeads % groups !== 0) throw invalidArgument(`estimate: ${groups} groups do not divide ${numHeads} heads`);
  const p = rows.data.length;
  const perGroup = numHeads / groups;
  const perKv = numHeads / numKvHeads;
  const out = f32([groups, p]);
  for (let i = 0; i < p; i++) {
    for (let h = 0; h < numHeads; h++) {
      const s = estimateScore(q.f32, h * d, digests.data, digests.offset(rows.i32[i], Math.floor(h / perKv)), d, variant);
      out.f32[Math.floor(h / perGroup) * p + i] += s / perGroup;
    }
  }
  return out;
}

/** Whole slots, as bytes: an fp8 page moves with its scale bytes. */
export function copyPages(src: RefPageStorage, srcSlots: readonly number[], dst: RefPageStorage, dstSlots: readonly number[]): void {
  if (srcSlots.length !== dstSlots.length) throw invalidArgument('copyPages: slot lists differ in length');
  if (src instanceof RefFp8KvStorage || dst instanceof RefFp8KvStorage) {
    if (!(src instanceof RefFp8KvStorage && dst instanceof RefFp8KvStorage) || src.pageBytes !== dst.pageBytes) {
      throw invalidArgument('copyPages: the pools have different page formats');
    }
    for (let i = 0; i < srcSlots.length; i++) {
      const from = src.codeOffset(srcSlots[i], 0, 0, 0);
      dst.bytes.set(src.bytes.subarray(from, from + src.pageBytes), dst.codeOffset(dstSlots[i], 0, 0, 0));
    }
    return;
  }
  for (let i = 0; i < srcSlots.length; i++) {
    const from = src.offset(srcSlots[i], 0, 0, 0);
    dst.data.set(src.data.subarray(from, from + src.pageElems), dst.offset(dstSlots[i], 0, 0, 0));
  }
}
