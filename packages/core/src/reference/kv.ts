import type { DigestStorage, KvStorage, PoolLocation } from '../backend.js';
import type { DigestVariant, KvGeometry } from '../config.js';
import { computeDigest, estimateScore } from '../digest.js';
import { invalidArgument } from '../errors.js';
import { type RefTensor, f32 } from './tensor.js';

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

export function appendKv(s: RefKvStorage, k: RefTensor, v: RefTensor, slots: RefTensor, offsets: RefTensor): void {
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
      s.data.set(k.f32.subarray(src, src + d), s.offset(slots.i32[i], 0, j, off));
      s.data.set(v.f32.subarray(src, src + d), s.offset(slots.i32[i], 1, j, off));
    }
  }
}

export function digestPages(s: RefKvStorage, slots: RefTensor, digests: RefDigestStorage, rows: RefTensor, variant: DigestVariant): void {
  const { numKvHeads: h, headDim: d, pageSize } = s.geometry;
  for (let i = 0; i < slots.data.length; i++) {
    for (let j = 0; j < h; j++) {
      const start = s.offset(slots.i32[i], 0, j, 0);
      const keys = s.data.subarray(start, start + pageSize * d);
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

export function copyPages(src: RefKvStorage, srcSlots: readonly number[], dst: RefKvStorage, dstSlots: readonly number[]): void {
  if (srcSlots.length !== dstSlots.length) throw invalidArgument('copyPages: slot lists differ in length');
  for (let i = 0; i < srcSlots.length; i++) {
    const from = src.offset(srcSlots[i], 0, 0, 0);
    dst.data.set(src.data.subarray(from, from + src.pageElems), dst.offset(dstSlots[i], 0, 0, 0));
  }
}
