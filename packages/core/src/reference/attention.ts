import type { PagedAttentionArgs } from '../backend.js';
import { invalidArgument } from '../errors.js';
import { RefFp8KvStorage, type RefPageStorage, gatherDequantized } from './kv.js';
import { type RefTensor, asRef, f32 } from './tensor.js';

/** Softmax-weighted sum for one query head over `n` keys/values given by accessors. */
function attendOne(
  q: Float32Array,
  qOff: number,
  d: number,
  n: number,
  keyAt: (j: number) => number,
  valAt: (j: number) => number,
  kv: Float32Array,
  scale: number,
  out: Float32Array,
  outOff: number,
  probs: Float64Array,
): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const ko = keyAt(j);
    let s = 0;
    for (let e = 0; e < d; e++) s += q[qOff + e] * kv[ko + e];
    s *= scale;
    probs[j] = s;
    if (s > max) max = s;
  }
  let total = 0;
  for (let j = 0; j < n; j++) {
    probs[j] = Math.exp(probs[j] - max);
    total += probs[j];
  }
  for (let e = 0; e < d; e++) out[outOff + e] = 0;
  for (let j = 0; j < n; j++) {
    probs[j] /= total;
    const vo = valAt(j);
    for (let e = 0; e < d; e++) out[outOff + e] += probs[j] * kv[vo + e];
  }
}

export function pagedAttention(args: PagedAttentionArgs, storage: RefPageStorage): { out: RefTensor; tokenScores?: RefTensor } {
  if (storage instanceof RefFp8KvStorage) {
    // fp8 pages: dequantize the listed pages, then the float32 code below, unchanged.
    const gathered = gatherDequantized(storage, asRef(args.pageTable), asRef(args.pageCounts));
    return pagedAttention({ ...args, storage: gathered.storage, pageTable: gathered.pageTable }, gathered.storage);
  }
  const q = asRef(args.q),
    table = asRef(args.pageTable),
    counts = asRef(args.pageCounts),
    lasts = asRef(args.lastPageLens);
  const { numHeads, numKvHeads, headDim: d, pageSize } = storage.geometry;
  const [b, g, maxPages] = table.shape;
  if (q.data.length !== b * numHeads * d) throw invalidArgument(`pagedAttention: q must be [${b}, ${numHeads}, ${d}]`);
  if (numHeads % g !== 0) throw invalidArgument(`pagedAttention: ${g} page lists do not divide ${numHeads} heads`);
  const perGroup = numHeads / g;
  const perKv = numHeads / numKvHeads;
  const out = f32([b, numHeads, d]);
  const scores = args.returnTokenScores ? f32([b, g, maxPages * pageSize]) : undefined;
  const probs = new Float64Array(maxPages * pageSize);
  for (let r = 0; r < b; r++) {
    for (let grp = 0; grp < g; grp++) {
      const pages = counts.i32[r * g + grp];
      const last = lasts.i32[r * g + grp];
      if (pages < 1 || pages > maxPages || last < 1 || last > pageSize) {
        throw invalidArgument(`pagedAttention: row ${r} group ${grp} lists ${pages} page(s) with ${last} token(s) in the last`);
      }
      const n = (pages - 1) * pageSize + last;
      const rowBase = (r * g + grp) * maxPages;
      for (let hi = 0; hi < perGroup; hi++) {
        const h = grp * perGroup + hi;
        const kvh = Math.floor(h / perKv);
        const at = (kv: 0 | 1) => (j: number) => storage.offset(table.i32[rowBase + Math.floor(j / pageSize)], kv, kvh, j % pageSize);
        attendOne(q.f32, (r * numHeads + h) * d, d, n, at(0), at(1), storage.data, args.scale, out.f32, (r * numHeads + h) * d, probs);
        if (scores) {
          const base = (r * g + grp) * maxPages * pageSize;
          for (let j = 0; j < n; j++) scores.f32[base + j] += probs[j] / perGroup;
        }
      }
    }
  }
  return { out, tokenScores: scores };
}

export function causalAttention(
  qT: RefTensor,
  kT: RefTensor,
  vT: RefTensor,
  scale: number,
  keyScores: 'sum' | 'last' | undefined,
): { out: RefTensor; keyScores?: RefTensor } {
  const [t, numHeads, d] = qT.shape;
  const numKvHeads = kT.shape[1];
  if (kT.shape[0] !== t || vT.shape[0] !== t || kT.shape[2] !== d) {
    throw invalidArgument(`causalAttention: q [${qT.shape}] k [${kT.shape}] v [${vT.shape}] do not match`);
  }
  const perKv = numHeads / numKvHeads;
  const out = f32([t, numHeads, d]);
  const stats = keyScores ? f32([t]) : undefined;
  const probs = new Float64Array(t);
  // K and V are separate arrays here; attendOne reads one array, so key/value
  // accessors index a concatenation [K | V].
  const kv = new Float32Array(kT.data.length + vT.data.length);
  kv.set(kT.f32, 0);
  kv.set(vT.f32, kT.data.length);
  const vBase = kT.data.length;
  for (let i = 0; i < t; i++) {
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / perKv);
      const keyAt = (j: number) => (j * numKvHeads + kvh) * d;
      attendOne(qT.f32, (i * numHeads + h) * d, d, i + 1, keyAt, (j) => vBase + keyAt(j), kv, scale, out.f32, (i * numHeads + h) * d, probs);
      if (stats && (keyScores === 'sum' || i === t - 1)) {
        for (let j = 0; j <= i; j++) stats.f32[j] += probs[j] / numHeads;
      }
    }
  }
  return { out, keyScores: stats };
}
