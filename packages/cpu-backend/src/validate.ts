/**
 * Shape checks for the natively implemented operations. They throw the same
 * INVALID_ARGUMENT errors, with the same messages where the reference has one,
 * as the reference backend, and they check a little more (exact shapes, slots):
 * the reference would read past an array and get `undefined`, native code would
 * read foreign memory. The addon repeats the bounds checks as a last line.
 */
import { RefFp8KvStorage, RefKvStorage, invalidArgument, type KvStorage, type RefPageStorage, type RefTensor } from '@arkvale/core';

/** Product of all dimensions after the first, as the reference's rowSize. */
export function rowSize(t: RefTensor): number {
  return t.shape.slice(1).reduce((a, b) => a * b, 1);
}

export function matmulDims(x: RefTensor, w: RefTensor): { m: number; n: number; k: number } {
  const [m, k] = [x.shape[0], rowSize(x)];
  const [n, kw] = [w.shape[0], rowSize(w)];
  if (k !== kw) throw invalidArgument(`matmul: inner dimensions differ (${k} vs ${kw})`);
  return { m, n, k };
}

export interface CausalDims {
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

export function causalDims(q: RefTensor, k: RefTensor, v: RefTensor): CausalDims {
  const mismatch = () => invalidArgument(`causalAttention: q [${q.shape}] k [${k.shape}] v [${v.shape}] do not match`);
  if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3) throw mismatch();
  const [tokens, heads, headDim] = q.shape;
  const kvHeads = k.shape[1];
  const sameKv = k.shape.every((s, i) => s === v.shape[i]);
  if (k.shape[0] !== tokens || k.shape[2] !== headDim || !sameKv || kvHeads < 1) throw mismatch();
  if (heads % kvHeads !== 0) throw invalidArgument(`causalAttention: ${kvHeads} KV heads do not divide ${heads} heads`);
  return { tokens, heads, kvHeads, headDim };
}

export function asKvStorage(s: KvStorage): RefPageStorage {
  if (!(s instanceof RefKvStorage || s instanceof RefFp8KvStorage)) throw invalidArgument('KV storage does not belong to the reference backend');
  return s;
}

export interface PagedDims {
  batch: number;
  groups: number;
  maxPages: number;
}

/** Checks q, the page lists and every listed slot against the pool. */
export function pagedDims(q: RefTensor, storage: RefPageStorage, table: RefTensor, counts: RefTensor, lasts: RefTensor): PagedDims {
  const { numHeads, headDim: d, pageSize } = storage.geometry;
  if (table.shape.length !== 3) throw invalidArgument(`pagedAttention: page table must be [B, G, maxPages], got [${table.shape}]`);
  const [batch, groups, maxPages] = table.shape;
  if (q.data.length !== batch * numHeads * d) throw invalidArgument(`pagedAttention: q must be [${batch}, ${numHeads}, ${d}]`);
  if (groups < 1 || numHeads % groups !== 0) throw invalidArgument(`pagedAttention: ${groups} page lists do not divide ${numHeads} heads`);
  for (const [name, t] of [
    ['page counts', counts],
    ['last page lengths', lasts],
  ] as const) {
    if (t.data.length !== batch * groups) throw invalidArgument(`pagedAttention: ${name} must be [${batch}, ${groups}], got [${t.shape}]`);
  }
  const slots = table.i32,
    pageCounts = counts.i32,
    lastLens = lasts.i32;
  for (let r = 0; r < batch; r++) {
    for (let grp = 0; grp < groups; grp++) {
      const pages = pageCounts[r * groups + grp];
      const last = lastLens[r * groups + grp];
      if (pages < 1 || pages > maxPages || last < 1 || last > pageSize) {
        throw invalidArgument(`pagedAttention: row ${r} group ${grp} lists ${pages} page(s) with ${last} token(s) in the last`);
      }
      for (let p = 0; p < pages; p++) {
        const slot = slots[(r * groups + grp) * maxPages + p];
        if (slot < 0 || slot >= storage.slots) throw invalidArgument(`${storage.location} slot ${slot} outside 0..${storage.slots - 1}`);
      }
    }
  }
  return { batch, groups, maxPages };
}
