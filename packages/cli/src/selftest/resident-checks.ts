/**
 * The device-side selection of a decode step (Backend.scatterI32, selectResident,
 * recallListed) on the CUDA backend against the reference: a ragged batch of three
 * rows (one with no candidates) over page tables whose slots point into real pools.
 *
 * Estimates differ between the backends in their last bits (f16 inputs, f32 sums in
 * another order), and a near-tie can then go either way. So the scores are checked
 * within f32 tolerance, and the selection exactly against core's planPageSelection run
 * on the CUDA backend's own scores (its estimate of the same digest rows, which
 * estimate_rows reproduces bit for bit) and applied here as the reference applies it.
 */
import type { Backend, DigestStorage, DigestVariant, KvGeometry, KvStorage, SelectResidentArgs, SelectResidentResult, Tensor } from '@arkvale/core';
import { DIGEST_VARIANTS, planPageSelection } from '@arkvale/core';
import type { KvShape } from './kv-checks.js';
import { poolValues } from './pool-values.js';
import { mismatches, relativeError, result, TOLERANCE, type CheckResult, type Twin } from './twin.js';

/** One batch row: logical pages, first candidate, candidates, and the chance that a candidate is resident. */
type RowShape = readonly [pages: number, first: number, count: number, residentChance: number];

/** Page tables [rows, 3, pages] (slot, digest row, host slot) with slots and host slots distinct over the whole batch. */
interface Layout {
  readonly tables: Int32Array;
  readonly rows: Int32Array;
  readonly tablePages: number;
  readonly maxCandidates: number;
  readonly maxPages: number;
}

function layout(t: Twin, shapes: readonly RowShape[], digestRows: number): Layout {
  const tablePages = Math.max(...shapes.map((s) => s[0])) + 2;
  const rowsCap = shapes.length + 1;
  // Batch row r uses table row order[r]; one table row is left for nobody.
  const order = Array.from({ length: rowsCap }, (_, i) => i).sort(() => t.next() - 0.5);
  const tables = new Int32Array(rowsCap * 3 * tablePages).map((_, i) => 5000 + i);
  let slot = 0;
  let host = 0;
  let maxPages = 0;
  const rows: number[] = [];
  shapes.forEach(([pages, first, count, chance], r) => {
    const base = order[r] * 3 * tablePages;
    let resident = 0;
    for (let p = 0; p < pages; p++) {
      const candidate = p >= first && p < first + count;
      const isResident = !candidate || t.next() < chance;
      if (isResident) resident++;
      tables[base + p] = isResident ? slot++ : -1;
      tables[base + tablePages + p] = t.int(digestRows);
      tables[base + 2 * tablePages + p] = candidate || t.next() < 0.5 ? host++ : -1;
    }
    maxPages = Math.max(maxPages, resident);
    rows.push(order[r], pages, first, count, pages > 0 ? 1 + t.int(16) : 0);
  });
  return { tables, rows: Int32Array.from(rows), tablePages, maxCandidates: Math.max(...shapes.map((s) => s[2])) + 2, maxPages: maxPages + 2 };
}

/** selectResident's outputs as the reference computes them, from given scores per batch row ([groups * count] each). */
function expectedSelection(
  l: Layout,
  scores: readonly Float32Array[],
  groups: number,
  k: number,
): { lists: Record<keyof SelectResidentResult, Int32Array>; tables: Int32Array } {
  const t = Int32Array.from(l.tables);
  const b = scores.length;
  const width = 1 + 2 * k * groups;
  const at = (row: number, field: number, page: number) => (row * 3 + field) * l.tablePages + page;
  const lists = {
    pageTable: new Int32Array(b * l.maxPages).fill(-1),
    pageCounts: new Int32Array(b),
    lastPageLens: new Int32Array(b),
    copies: new Int32Array(b * width),
    plan: new Int32Array(b * width),
  };
  for (let r = 0; r < b; r++) {
    const [row, pages, first, count, last] = l.rows.subarray(r * 5, r * 5 + 5);
    if (count > 0 && k > 0) {
      const resident = Int32Array.from({ length: count }, (_, i) => (t[at(row, 0, first + i)] >= 0 ? 1 : 0));
      const recalls = planPageSelection(scores[r], groups, resident, k, 0).recalls;
      lists.copies[r * width] = lists.plan[r * width] = recalls.length;
      recalls.forEach(({ candidate, victim }, j) => {
        const slot = t[at(row, 0, first + victim)];
        t[at(row, 0, first + candidate)] = slot;
        t[at(row, 0, first + victim)] = -1;
        lists.copies.set([t[at(row, 2, first + candidate)], slot], r * width + 1 + 2 * j);
        lists.plan.set([first + candidate, first + victim], r * width + 1 + 2 * j);
      });
    }
    let listed = 0;
    for (let p = 0; p < pages; p++) if (t[at(row, 0, p)] >= 0) lists.pageTable[r * l.maxPages + listed++] = t[at(row, 0, p)];
    lists.pageCounts[r] = listed;
    lists.lastPageLens[r] = last;
  }
  return { lists, tables: t };
}

/**
 * selectAttend's lists (Quest) from given scores per batch row: per group, every page
 * that is not a candidate and the top k candidates (higher first, ties to the lower
 * page), in page order, through the tables' slots.
 */
function expectedQuestLists(
  l: Layout,
  scores: readonly Float32Array[],
  groups: number,
  k: number,
  maxPages: number,
): Record<'pageTable' | 'pageCounts' | 'lastPageLens', Int32Array> {
  const b = scores.length;
  const lists = { pageTable: new Int32Array(b * groups * maxPages).fill(-1), pageCounts: new Int32Array(b * groups), lastPageLens: new Int32Array(b * groups) };
  for (let r = 0; r < b; r++) {
    const [row, pages, first, count, last] = l.rows.subarray(r * 5, r * 5 + 5);
    for (let g = 0; g < groups; g++) {
      const s = scores[r].subarray(g * count, (g + 1) * count);
      const chosen = new Set(
        Array.from({ length: count }, (_, i) => i)
          .sort((a, c) => s[c] - s[a] || a - c)
          .slice(0, k),
      );
      const list = (r * groups + g) * maxPages;
      let listed = 0;
      for (let p = 0; p < pages; p++) {
        const i = p - first;
        if (i >= 0 && i < count && !chosen.has(i)) continue;
        lists.pageTable[list + listed++] = l.tables[row * 3 * l.tablePages + p];
      }
      lists.pageCounts[r * groups + g] = listed;
      lists.lastPageLens[r * groups + g] = last;
    }
  }
  return lists;
}

/** A pool of `slots` pages filled with the same random keys and values on both backends. */
function filledPools(t: Twin, g: (bytes: number) => KvGeometry, slots: number): { gpu: KvStorage; ref: KvStorage } {
  const geometry = g(4);
  const pools = { gpu: t.gpu.createKvStorage('device', slots, g(2)), ref: t.ref.createKvStorage('device', slots, geometry) };
  const tokens = slots * geometry.pageSize;
  const k = t.floats([tokens, geometry.numKvHeads, geometry.headDim], 2);
  const v = t.floats([tokens, geometry.numKvHeads, geometry.headDim], 2);
  const at = t.ints(Array.from({ length: tokens }, (_, i) => Math.floor(i / geometry.pageSize)));
  const offsets = t.ints(Array.from({ length: tokens }, (_, i) => i % geometry.pageSize));
  t.gpu.appendKv(pools.gpu, k.gpu, v.gpu, at.gpu, offsets.gpu);
  t.ref.appendKv(pools.ref, k.ref, v.ref, at.ref, offsets.ref);
  return pools;
}

/** Every candidate's estimate on one backend, per batch row ([groups * count], group-major, as planPageSelection takes them). */
function rowScores(b: Backend, l: Layout, q: Tensor, digests: DigestStorage, groups: number, variant: DigestVariant): Float32Array[] {
  const out: Float32Array[] = [];
  for (let r = 0; r * 5 < l.rows.length; r++) {
    const [row, , first, count] = l.rows.subarray(r * 5, r * 5 + 4);
    if (count === 0) {
      out.push(new Float32Array(0));
      continue;
    }
    const digestRows = Array.from({ length: count }, (_, i) => l.tables[(row * 3 + 1) * l.tablePages + first + i]);
    const est = b.estimate(b.sliceRows(q, r, 1), digests, b.fromArray(digestRows, [count], 'i32'), groups, variant);
    out.push(Float32Array.from(b.readSync(est)));
  }
  return out;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * One batch for every digest variant and selection grouping (1 and numKvHeads): scores,
 * the selection with its tables, lists and copy lists, and the recall of those copies.
 */
function batchChecks(
  t: Twin,
  g: (bytes: number) => KvGeometry,
  label: string,
  shapes: readonly RowShape[],
  k: number,
  variants: readonly DigestVariant[],
): CheckResult[] {
  const out: CheckResult[] = [];
  const geometry = g(4);
  const heads = geometry.numHeads;
  const digestRows = 16;
  // Enough slots for every page of the batch on either side (layout numbers them apart).
  const slots = shapes.reduce((n, s) => n + s[0], 0);
  const pools = filledPools(t, g, slots);
  const host = { gpu: t.gpu.createKvStorage('host', slots, g(2)), ref: t.ref.createKvStorage('host', slots, geometry) };
  // Every host slot holds a backup of a device page (another one than the same-numbered slot).
  const backed = Array.from({ length: slots }, (_, i) => (i * 7 + 3) % slots);
  const hostSlots = backed.map((_, i) => i);
  t.gpu.awaitCopy(t.gpu.copyPages(pools.gpu, backed, host.gpu, hostSlots));
  t.ref.copyPages(pools.ref, backed, host.ref, hostSlots);
  const digests = { gpu: t.gpu.createDigestStorage(digestRows, g(2)), ref: t.ref.createDigestStorage(digestRows, geometry) };
  const digestSlots = t.ints(Array.from({ length: digestRows }, (_, i) => i % slots));
  const digestAt = t.ints(Array.from({ length: digestRows }, (_, i) => i));
  for (const variant of variants) {
    t.gpu.digestPages(pools.gpu, digestSlots.gpu, digests.gpu, digestAt.gpu, variant);
    t.ref.digestPages(pools.ref, digestSlots.ref, digests.ref, digestAt.ref, variant);
    for (const groups of [...new Set([1, geometry.numKvHeads])]) {
      const detail = `${label}, ${variant}, ${groups} group(s), k ${k}`;
      const l = layout(t, shapes, digestRows);
      const q = t.floats([shapes.length, heads, geometry.headDim], 2);
      const tables = t.ints(Array.from(l.tables), [l.tables.length / (3 * l.tablePages), 3, l.tablePages]);
      const rows = t.ints(Array.from(l.rows), [shapes.length, 5]);
      const args = (side: 'gpu' | 'ref'): SelectResidentArgs => ({
        q: q[side],
        digests: digests[side],
        variant,
        groups,
        tables: tables[side],
        rows: rows[side],
        k,
        maxCandidates: l.maxCandidates,
        maxPages: l.maxPages,
      });
      const mine = rowScores(t.gpu, l, q.gpu, digests.gpu, groups, variant);
      // Against f32 digests on the reference: the device's are rounded outward to the KV dtype.
      out.push(
        result('selectResident scores', detail, relativeError(concat(mine), concat(rowScores(t.ref, l, q.ref, digests.ref, groups, variant))), TOLERANCE.half),
      );
      // Quest's lists from the same scores, before selectResident moves pages in the tables (Quest only reads them).
      const questPages = Math.max(...shapes.map(([pages, , count]) => pages - count + Math.min(k, count)));
      const quest = t.gpu.selectAttend?.({ ...args('gpu'), maxPages: questPages });
      if (quest) {
        const wantQuest = expectedQuestLists(l, mine, groups, k, questPages);
        let wrongQuest = 0;
        for (const key of ['pageTable', 'pageCounts', 'lastPageLens'] as const) wrongQuest += mismatches(t.gpu.readSync(quest[key]), wantQuest[key]);
        out.push(result('selectAttend lists (Quest)', `${detail} (against the top k of the CUDA scores)`, wrongQuest, TOLERANCE.exact));
      }
      const got = t.gpu.selectResident(args('gpu'));
      const want = expectedSelection(l, mine, groups, k);
      let wrong = mismatches(t.gpu.readSync(tables.gpu), want.tables);
      for (const key of ['plan', 'copies', 'pageTable', 'pageCounts', 'lastPageLens'] as const) wrong += mismatches(t.gpu.readSync(got[key]), want.lists[key]);
      out.push(result('selectResident plan, tables and lists', `${detail} (against planPageSelection on the CUDA scores)`, wrong, TOLERANCE.exact));
      // The recalls those lists name, into the device pool on both backends.
      const copies = Array.from(t.gpu.readSync(got.copies));
      t.gpu.recallListed(host.gpu, pools.gpu, got.copies);
      t.ref.recallListed(host.ref, pools.ref, t.ref.fromArray(copies, got.copies.shape, 'i32'));
      out.push(
        result(
          'recallListed',
          `${detail}, ${copies.filter((_, i) => i % (1 + 2 * k * groups) === 0).reduce((a, n) => a + n, 0)} pages`,
          mismatches(poolValues(t.gpu, pools.gpu), poolValues(t.ref, pools.ref)),
          TOLERANCE.exact,
        ),
      );
    }
  }
  for (const s of [pools, host, digests]) {
    t.gpu.freeStorage(s.gpu);
    t.ref.freeStorage(s.ref);
  }
  return out;
}

/** scatterI32 on random distinct indices of a page-table-shaped target. */
function scatterChecks(t: Twin): CheckResult[] {
  const shape = [4, 3, 40];
  const n = shape.reduce((a, b) => a * b, 1);
  const target = t.ints(
    Array.from({ length: n }, () => t.int(2000) - 1000),
    shape,
  );
  const at = Array.from({ length: n }, (_, i) => i)
    .sort(() => t.next() - 0.5)
    .slice(0, 150);
  const updates = t.ints(
    at.flatMap((i) => [i, t.int(2000) - 1000]),
    [at.length, 2],
  );
  t.gpu.scatterI32(target.gpu, updates.gpu);
  t.ref.scatterI32(target.ref, updates.ref);
  const [a, b] = t.read(target.gpu, target.ref);
  return [result('scatterI32', `${at.length} of ${n} elements`, mismatches(a, b), TOLERANCE.exact)];
}

/**
 * The shape's checks: a small ragged batch for every digest variant; the bundled
 * model's shape also runs a decode-sized batch (more candidates than the kernel has
 * threads, k 29).
 */
export function residentChecks(t: Twin, shape: KvShape, g: (bytes: number) => KvGeometry, name: string): CheckResult[] {
  const out = [
    ...scatterChecks(t),
    ...batchChecks(
      t,
      g,
      `${name}, ragged batch of 3`,
      [
        [36, 2, 30, 0.5],
        [5, 0, 0, 0],
        [22, 1, 18, 0.4],
      ],
      5,
      DIGEST_VARIANTS,
    ),
  ];
  if (shape.headDim === 128 && shape.group === 2) {
    out.push(
      ...batchChecks(
        t,
        g,
        `${name}, 960 candidates`,
        [
          [980, 4, 960, 0.97],
          [6, 0, 0, 0],
          [500, 4, 480, 0.9],
        ],
        29,
        ['cuboid-max'],
      ),
    );
  }
  return out;
}
