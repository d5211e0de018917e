import type { DigestVariant, KvGeometry } from '@arkvale/core';
import { chunkAttention, DIGEST_VARIANTS } from '@arkvale/core';
import { poolValues } from './pool-values.js';
import { residentChecks } from './resident-checks.js';
import { mismatches, relativeError, result, TOLERANCE, type CheckResult, type Twin } from './twin.js';

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
 * step's device-side selection (resident-checks.ts).
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
  return out;
}
