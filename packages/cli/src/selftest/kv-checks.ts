import type { Backend, DigestVariant, KvGeometry, KvStorage } from '@arkvale/core';
import { chunkAttention, DIGEST_VARIANTS, fp8ScaleOffset, pageBytes } from '@arkvale/core';
import { poolBytes, poolValues } from './pool-values.js';
import { residentChecks } from './resident-checks.js';
import { mismatches, quantize, relativeError, result, TOLERANCE, type CheckResult, type Twin, type TwinTensor } from './twin.js';

/** A model shape for the KV checks: head dim, page size and GQA group. */
export interface KvShape {
  readonly headDim: number;
  readonly pageSize: number;
  readonly group: number;
}

/** Every head dim, page size and GQA group of the default kernel matrix. */
export const KV_SHAPES: readonly KvShape[] = [64, 128].flatMap((headDim) =>
  [16, 32].flatMap((pageSize) => [1, 2, 4, 8].map((group) => ({ headDim, pageSize, group }))),
);

function describe(s: KvShape, kvHeads: number): string {
  return `hd ${s.headDim}, pages of ${s.pageSize}, ${kvHeads * s.group}/${kvHeads} heads`;
}

/**
 * Page operations of one shape on both backends: append, digests (every variant),
 * estimates (every selection grouping), copies between pools, and paged attention
 * over ragged page lists (one list, one per KV head, one per query head), with token
 * scores; then causal prefill attention with its key statistics, a prefill chunk's
 * attention over its pages, and the decode
 * step's device-side selection (resident-checks.ts). Then the same shape with fp8
 * pages (fp8KvChecks).
 */
export function kvChecks(t: Twin, shape: KvShape): CheckResult[] {
  const out: CheckResult[] = [];
  const kvHeads = shape.group === 8 ? 1 : 2;
  const heads = kvHeads * shape.group;
  const { headDim: d, pageSize: ps } = shape;
  const name = describe(shape, kvHeads);
  const g = (bytes: number): KvGeometry => ({ numLayers: 1, numHeads: heads, numKvHeads: kvHeads, headDim: d, pageSize: ps, bytesPerElement: bytes });
  const slots = 12;
  const pools = {
    gpu: t.gpu.createKvStorage('device', slots, g(2)),
    ref: t.ref.createKvStorage('device', slots, g(4)),
  };
  // Fill every slot: a page per slot, written token by token in random order.
  const tokens = slots * ps;
  const order = Array.from({ length: tokens }, (_, i) => i).sort(() => t.next() - 0.5);
  const k = t.floats([tokens, kvHeads, d], 2);
  const v = t.floats([tokens, kvHeads, d], 2);
  const at = t.ints(order.map((i) => Math.floor(i / ps)));
  const offsets = t.ints(order.map((i) => i % ps));
  t.gpu.appendKv(pools.gpu, k.gpu, v.gpu, at.gpu, offsets.gpu);
  t.ref.appendKv(pools.ref, k.ref, v.ref, at.ref, offsets.ref);
  out.push(result('appendKv', name, mismatches(poolValues(t.gpu, pools.gpu), poolValues(t.ref, pools.ref)), TOLERANCE.exact));

  const digests = { gpu: t.gpu.createDigestStorage(8, g(2)), ref: t.ref.createDigestStorage(8, g(4)) };
  const pages = t.ints([3, 0, 11, 5, 7]);
  const rows = t.ints([1, 6, 0, 3, 7]);
  const q = t.floats([heads, d], 2);
  for (const variant of DIGEST_VARIANTS as readonly DigestVariant[]) {
    t.gpu.digestPages(pools.gpu, pages.gpu, digests.gpu, rows.gpu, variant);
    t.ref.digestPages(pools.ref, pages.ref, digests.ref, rows.ref, variant);
    for (const groups of [...new Set([1, kvHeads, heads])]) {
      const [a, b] = t.read(t.gpu.estimate(q.gpu, digests.gpu, rows.gpu, groups, variant), t.ref.estimate(q.ref, digests.ref, rows.ref, groups, variant));
      // The device stores digests in the KV dtype, rounded outward; the reference keeps f32.
      out.push(result('digestPages + estimate', `${name}, ${variant}, ${groups} group(s)`, relativeError(a, b), TOLERANCE.half));
    }
  }

  // Ragged batch: three sequences, lists of different lengths, a partial last page.
  const batch = 3;
  for (const lists of [...new Set([1, kvHeads, heads])]) {
    const maxPages = 6;
    const table = Array.from({ length: batch * lists * maxPages }, () => t.int(slots));
    const counts = Array.from({ length: batch * lists }, (_, i) => 1 + ((i * 5 + t.int(maxPages)) % maxPages));
    const lasts = Array.from({ length: batch * lists }, () => 1 + t.int(ps));
    const qb = t.floats([batch, heads, d], 2);
    const pt = t.ints(table, [batch, lists, maxPages]);
    const pc = t.ints(counts, [batch, lists]);
    const pl = t.ints(lasts, [batch, lists]);
    const args = (side: 'gpu' | 'ref') => ({
      q: qb[side],
      storage: pools[side],
      pageTable: pt[side],
      pageCounts: pc[side],
      lastPageLens: pl[side],
      scale: 1 / Math.sqrt(d),
      returnTokenScores: true,
    });
    const gpu = t.gpu.pagedAttention(args('gpu'));
    const ref = t.ref.pagedAttention(args('ref'));
    const [a, b] = t.read(gpu.out, ref.out);
    out.push(result('pagedAttention', `${name}, ${lists} list(s) per sequence, ragged batch of ${batch}`, relativeError(a, b), TOLERANCE.half));
    const [sa, sb] = t.read(gpu.tokenScores!, ref.tokenScores!);
    out.push(result('pagedAttention token scores', `${name}, ${lists} list(s)`, relativeError(sa, sb), TOLERANCE.f32));
  }

  for (const count of [1, 37, 200]) {
    const qc = t.floats([count, heads, d], 2);
    const kc = t.floats([count, kvHeads, d], 2);
    const vc = t.floats([count, kvHeads, d], 2);
    for (const keyScores of ['sum', 'last'] as const) {
      const gpu = t.gpu.causalAttention({ q: qc.gpu, k: kc.gpu, v: vc.gpu, scale: 1 / Math.sqrt(d), keyScores });
      const ref = t.ref.causalAttention({ q: qc.ref, k: kc.ref, v: vc.ref, scale: 1 / Math.sqrt(d), keyScores });
      if (keyScores === 'sum') {
        const [a, b] = t.read(gpu.out, ref.out);
        out.push(result('causalAttention', `${name}, ${count} tokens`, relativeError(a, b), TOLERANCE.half));
      }
      const [a, b] = t.read(gpu.keyScores!, ref.keyScores!);
      out.push(result('causalAttention key scores', `${name}, ${count} tokens, ${keyScores}`, relativeError(a, b), TOLERANCE.f32));
    }
  }

  // A prefill chunk over its sequence's pages (every slot, in a shuffled order), from
  // the first position, after a prefix and at the end: the backend's chunkAttention
  // (where it has one) against paged attention with each row's causal list.
  const sequence = Array.from({ length: slots }, (_, i) => i).sort(() => t.next() - 0.5);
  for (const [start, count] of [
    [0, 40],
    [5 * ps + 3, 37],
    [slots * ps - 3, 3],
  ]) {
    const qc = t.floats([count, heads, d], 2);
    const args = (side: 'gpu' | 'ref') => ({ q: qc[side], storage: pools[side], start, scale: 1 / Math.sqrt(d) });
    const [a, b] = t.read(chunkAttention(t.gpu, args('gpu'), sequence), chunkAttention(t.ref, args('ref'), sequence));
    out.push(result('chunkAttention', `${name}, ${count} rows from position ${start}`, relativeError(a, b), TOLERANCE.half));
  }

  // Backups to a pinned host pool, recalls back, copies within the pool.
  const host = { gpu: t.gpu.createKvStorage('host', 6, g(2)), ref: t.ref.createKvStorage('host', 6, g(4)) };
  const ticket = t.gpu.copyPages(pools.gpu, [4, 5, 9], host.gpu, [0, 1, 5]);
  t.ref.copyPages(pools.ref, [4, 5, 9], host.ref, [0, 1, 5]);
  t.gpu.awaitCopy(ticket);
  t.gpu.copyPages(host.gpu, [5, 0], pools.gpu, [2, 3]);
  t.ref.copyPages(host.ref, [5, 0], pools.ref, [2, 3]);
  t.gpu.copyPages(pools.gpu, [2], pools.gpu, [10]);
  t.ref.copyPages(pools.ref, [2], pools.ref, [10]);
  out.push(
    result(
      'copyPages',
      `${name}, device -> host -> device, within the pool`,
      mismatches(poolValues(t.gpu, pools.gpu), poolValues(t.ref, pools.ref)),
      TOLERANCE.exact,
    ),
  );
  for (const s of [pools, host, digests]) {
    t.gpu.freeStorage(s.gpu);
    t.ref.freeStorage(s.ref);
  }
  out.push(...residentChecks(t, shape, g, name));
  out.push(...fp8KvChecks(t, shape));
  return out;
}

/**
 * K or V rows as the backend's dtype stores them, each row (one token's values of one
 * KV head) at its own magnitude (2^-6 .. 2^1: every row gets its own fp8 scale byte),
 * the first row crafted: at scale factor 2^-6 (the codes of factor 1), e4m3 ties
 * (1.0625, 1.1875, 232, 3 * 2^-10) that round to even, 2^-10 (to 0), signed zeros and
 * the largest code, 448.
 */
function scaledRows(t: Twin, shape: readonly number[]): TwinTensor {
  const d = shape[shape.length - 1];
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let row = 0; row < n / d; row++) {
    const magnitude = 2 ** (t.int(8) - 6);
    for (let e = 0; e < d; e++) values[row * d + e] = (t.next() * 2 - 1) * magnitude;
  }
  values.set([448, 1.0625, 1.1875, -1.0625, 232, 3 * 2 ** -10, 2 ** -10, -0, 0, -240].map((x) => x * 2 ** -6).slice(0, d));
  const q = quantize(values, t.dtype);
  return { gpu: t.gpu.fromBytes(q.bytes, shape, t.dtype), ref: t.ref.fromArray(q.values, shape), values: q.values };
}

/** The codes and scale bytes of the listed slots of an fp8 pool (not the slots' padding, which nothing writes). */
function fp8Slots(b: Backend, s: KvStorage, g: KvGeometry, slots: readonly number[]): Uint8Array {
  const all = poolBytes(b, s);
  const size = pageBytes(g);
  const used = fp8ScaleOffset(g) + 2 * g.numKvHeads * g.pageSize;
  const out = new Uint8Array(slots.length * used);
  slots.forEach((slot, i) => out.set(all.subarray(slot * size, slot * size + used), i * used));
  return out;
}

/**
 * The page operations on fp8 pages (kvDtype 'fp8': e4m3 codes and a scale byte per
 * token, KV head and K|V): appends byte for byte (codes and scale bytes, written
 * token by token in random order), digests of the dequantized keys with their
 * estimates, paged attention with token scores over ragged lists, a prefill chunk's
 * attention over its pages, and copies and listed recalls through a pinned host pool
 * byte for byte.
 */
export function fp8KvChecks(t: Twin, shape: KvShape): CheckResult[] {
  const out: CheckResult[] = [];
  const kvHeads = shape.group === 8 ? 1 : 2;
  const heads = kvHeads * shape.group;
  const { headDim: d, pageSize: ps } = shape;
  const name = `${describe(shape, kvHeads)}, fp8 pages`;
  const g = (bytes: number): KvGeometry => ({
    numLayers: 1,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim: d,
    pageSize: ps,
    bytesPerElement: bytes,
    kvDtype: 'fp8',
  });
  const slots = 10;
  const pools = { gpu: t.gpu.createKvStorage('device', slots, g(2)), ref: t.ref.createKvStorage('device', slots, g(4)) };
  const tokens = slots * ps;
  const order = Array.from({ length: tokens }, (_, i) => i).sort(() => t.next() - 0.5);
  const k = scaledRows(t, [tokens, kvHeads, d]);
  const v = scaledRows(t, [tokens, kvHeads, d]);
  const at = t.ints(order.map((i) => Math.floor(i / ps)));
  const offsets = t.ints(order.map((i) => i % ps));
  t.gpu.appendKv(pools.gpu, k.gpu, v.gpu, at.gpu, offsets.gpu);
  t.ref.appendKv(pools.ref, k.ref, v.ref, at.ref, offsets.ref);
  const everySlot = Array.from({ length: slots }, (_, i) => i);
  const same = (s: { gpu: KvStorage; ref: KvStorage }, which: readonly number[]) =>
    mismatches(fp8Slots(t.gpu, s.gpu, g(2), which), fp8Slots(t.ref, s.ref, g(2), which));
  out.push(result('appendKv (fp8 pages)', `${name}: codes and scale bytes`, same(pools, everySlot), TOLERANCE.exact));

  const digests = { gpu: t.gpu.createDigestStorage(6, g(2)), ref: t.ref.createDigestStorage(6, g(4)) };
  const pages = t.ints([3, 0, 9, 5]);
  const rows = t.ints([1, 5, 0, 3]);
  const q = t.floats([heads, d], 2);
  for (const variant of DIGEST_VARIANTS as readonly DigestVariant[]) {
    t.gpu.digestPages(pools.gpu, pages.gpu, digests.gpu, rows.gpu, variant);
    t.ref.digestPages(pools.ref, pages.ref, digests.ref, rows.ref, variant);
    const groups = variant === 'cuboid-max' ? heads : 1;
    const [a, b] = t.read(t.gpu.estimate(q.gpu, digests.gpu, rows.gpu, groups, variant), t.ref.estimate(q.ref, digests.ref, rows.ref, groups, variant));
    out.push(result('digestPages + estimate (fp8 pages)', `${name}, ${variant}, ${groups} group(s)`, relativeError(a, b), TOLERANCE.half));
  }

  const batch = 3;
  for (const lists of [...new Set([1, heads])]) {
    const maxPages = 5;
    const table = Array.from({ length: batch * lists * maxPages }, () => t.int(slots));
    const counts = Array.from({ length: batch * lists }, (_, i) => 1 + ((i * 3 + t.int(maxPages)) % maxPages));
    const lasts = Array.from({ length: batch * lists }, () => 1 + t.int(ps));
    const qb = t.floats([batch, heads, d], 2);
    const pt = t.ints(table, [batch, lists, maxPages]);
    const pc = t.ints(counts, [batch, lists]);
    const pl = t.ints(lasts, [batch, lists]);
    const args = (side: 'gpu' | 'ref') => ({
      q: qb[side],
      storage: pools[side],
      pageTable: pt[side],
      pageCounts: pc[side],
      lastPageLens: pl[side],
      scale: 1 / Math.sqrt(d),
      returnTokenScores: true,
    });
    const gpu = t.gpu.pagedAttention(args('gpu'));
    const ref = t.ref.pagedAttention(args('ref'));
    const [a, b] = t.read(gpu.out, ref.out);
    out.push(result('pagedAttention (fp8 pages)', `${name}, ${lists} list(s) per sequence, ragged batch of ${batch}`, relativeError(a, b), TOLERANCE.half));
    const [sa, sb] = t.read(gpu.tokenScores!, ref.tokenScores!);
    out.push(result('pagedAttention token scores (fp8 pages)', `${name}, ${lists} list(s)`, relativeError(sa, sb), TOLERANCE.f32));
  }

  const sequence = Array.from({ length: slots }, (_, i) => i).sort(() => t.next() - 0.5);
  for (const [start, count] of [
    [0, 40],
    [4 * ps + 5, 30],
  ]) {
    const qc = t.floats([count, heads, d], 2);
    const args = (side: 'gpu' | 'ref') => ({ q: qc[side], storage: pools[side], start, scale: 1 / Math.sqrt(d) });
    const [a, b] = t.read(chunkAttention(t.gpu, args('gpu'), sequence), chunkAttention(t.ref, args('ref'), sequence));
    out.push(result('chunkAttention (fp8 pages)', `${name}, ${count} rows from position ${start}`, relativeError(a, b), TOLERANCE.half));
  }

  const host = { gpu: t.gpu.createKvStorage('host', 4, g(2)), ref: t.ref.createKvStorage('host', 4, g(4)) };
  const ticket = t.gpu.copyPages(pools.gpu, [4, 9], host.gpu, [0, 3]);
  t.ref.copyPages(pools.ref, [4, 9], host.ref, [0, 3]);
  t.gpu.awaitCopy(ticket);
  t.gpu.copyPages(host.gpu, [3, 0], pools.gpu, [1, 2]);
  t.ref.copyPages(host.ref, [3, 0], pools.ref, [1, 2]);
  t.gpu.copyPages(pools.gpu, [1], pools.gpu, [7]);
  t.ref.copyPages(pools.ref, [1], pools.ref, [7]);
  // recall_listed: two rows of a copy list [n, (host slot, device slot) x 2], the second copying one page.
  const copies = t.ints([2, 0, 8, 3, 6, 1, 3, 5, -1, -1], [2, 5]);
  t.gpu.recallListed(host.gpu, pools.gpu, copies.gpu);
  t.ref.recallListed(host.ref, pools.ref, copies.ref);
  out.push(
    result(
      'copyPages + recallListed (fp8 pages)',
      `${name}, device -> host -> device (copies and listed recalls), within the pool`,
      same(pools, everySlot) + same(host, [0, 3]),
      TOLERANCE.exact,
    ),
  );
  for (const s of [pools, host, digests]) {
    t.gpu.freeStorage(s.gpu);
    t.ref.freeStorage(s.ref);
  }
  return out;
}
