/**
 * The device-side selection of a decode step (Backend.selectResident, selectAttend,
 * recallListed, scatterI32) over reference tensors: what a GPU does in a few launches, written as
 * plain loops so that CPU runs exercise the same decision path and the CUDA kernels
 * have an oracle.
 */
import {
  PAGE_TABLE_FIELDS as F,
  SELECT_ROW_FIELDS as R,
  type PageSelectionArgs,
  type SelectAttendArgs,
  type SelectAttendResult,
  type SelectResidentArgs,
  type SelectResidentResult,
} from '../backend.js';
import { estimateScore } from '../digest.js';
import { invalidArgument } from '../errors.js';
import { planPageSelection } from '../policies/selection.js';
import type { RefDigestStorage, RefPageStorage } from './kv.js';
import { copyPages } from './kv.js';
import { RefTensor, asRef } from './tensor.js';

const ROW_FIELDS = Object.keys(R).length;

export function scatterI32(target: RefTensor, updates: RefTensor): void {
  if (target.dtype !== 'i32' || updates.dtype !== 'i32') throw invalidArgument('scatterI32: target and updates must be i32');
  const u = updates.i32;
  if (u.length % 2 !== 0) throw invalidArgument(`scatterI32: updates must be [n, 2], got [${updates.shape}]`);
  for (let i = 0; i < u.length; i += 2) {
    if (u[i] < 0 || u[i] >= target.i32.length) throw invalidArgument(`scatterI32: index ${u[i]} outside 0..${target.i32.length - 1}`);
    target.i32[u[i]] = u[i + 1];
  }
}

export function selectResident(args: SelectResidentArgs, q: RefTensor, digests: RefDigestStorage, tables: RefTensor, rows: RefTensor): SelectResidentResult {
  const { numHeads, headDim: d } = digests.geometry;
  const b = rows.shape[0];
  if (rows.shape[1] !== ROW_FIELDS || rows.dtype !== 'i32') throw invalidArgument(`selectResident: rows must be i32 [B, ${ROW_FIELDS}], got [${rows.shape}]`);
  if (q.data.length !== b * numHeads * d) throw invalidArgument(`selectResident: q must be [${b}, ${numHeads}, ${d}], got [${q.shape}]`);
  if (tables.shape.length !== 3 || tables.shape[1] !== 3) throw invalidArgument(`selectResident: tables must be i32 [rows, 3, pages], got [${tables.shape}]`);
  const { groups, k, maxPages } = args;
  const width = tables.shape[2];
  const t = tables.i32;
  const at = (row: number, field: number, page: number) => (row * 3 + field) * width + page;
  // Each group chooses k, so up to k x groups pages are recalled.
  const listWidth = 1 + 2 * k * groups;
  const pageTable = new Int32Array(b * maxPages).fill(-1);
  const pageCounts = new Int32Array(b);
  const lastPageLens = new Int32Array(b);
  const copies = new Int32Array(b * listWidth);
  const planRows = args.planInto ? planTarget(asRef(args.planInto.tensor), args.planInto.row, b, listWidth) : new Int32Array(b * listWidth);
  for (let r = 0; r < b; r++) {
    const desc = rows.i32.subarray(r * ROW_FIELDS, (r + 1) * ROW_FIELDS);
    const row = desc[R.tableRow];
    const n = desc[R.numPages];
    const first = desc[R.firstCandidate];
    const count = desc[R.candidates];
    if (row < 0 || row >= tables.shape[0] || n > width || first + count > n) {
      throw invalidArgument(`selectResident: batch row ${r} (table row ${row}, ${n} pages, candidates ${first}+${count}) outside tables [${tables.shape}]`);
    }
    if (count > args.maxCandidates)
      throw invalidArgument(`selectResident: batch row ${r} has ${count} candidates, more than maxCandidates ${args.maxCandidates}`);
    if (count > 0 && k > 0) {
      const scores = candidateScores(args, q, digests, (i) => t[at(row, F.digest, first + i)], r, count);
      const resident = Int32Array.from({ length: count }, (_, i) => (t[at(row, F.slot, first + i)] >= 0 ? 1 : 0));
      const recalls = planPageSelection(scores, groups, resident, k, 0).recalls;
      copies[r * listWidth] = planRows[r * listWidth] = recalls.length;
      recalls.forEach(({ candidate, victim }, j) => {
        const page = first + candidate;
        const out = first + victim;
        const slot = t[at(row, F.slot, out)];
        t[at(row, F.slot, page)] = slot;
        t[at(row, F.slot, out)] = -1;
        copies.set([t[at(row, F.host, page)], slot], r * listWidth + 1 + 2 * j);
        planRows.set([page, out], r * listWidth + 1 + 2 * j);
      });
    }
    let listed = 0;
    for (let p = 0; p < n; p++) {
      const slot = t[at(row, F.slot, p)];
      if (slot < 0) continue;
      if (listed === maxPages) throw invalidArgument(`selectResident: batch row ${r} has more than maxPages ${maxPages} resident pages`);
      pageTable[r * maxPages + listed++] = slot;
    }
    pageCounts[r] = listed;
    lastPageLens[r] = desc[R.lastPageLen];
  }
  return {
    pageTable: new RefTensor(pageTable, [b, 1, maxPages], 'i32'),
    pageCounts: new RefTensor(pageCounts, [b, 1], 'i32'),
    lastPageLens: new RefTensor(lastPageLens, [b, 1], 'i32'),
    copies: new RefTensor(copies, [b, listWidth], 'i32'),
    plan: args.planInto ? args.planInto.tensor : new RefTensor(planRows, [b, listWidth], 'i32'),
  };
}

export function selectAttend(args: SelectAttendArgs, q: RefTensor, digests: RefDigestStorage, tables: RefTensor, rows: RefTensor): SelectAttendResult {
  const { numHeads, headDim: d } = digests.geometry;
  const b = rows.shape[0];
  if (rows.shape[1] !== ROW_FIELDS || rows.dtype !== 'i32') throw invalidArgument(`selectAttend: rows must be i32 [B, ${ROW_FIELDS}], got [${rows.shape}]`);
  if (q.data.length !== b * numHeads * d) throw invalidArgument(`selectAttend: q must be [${b}, ${numHeads}, ${d}], got [${q.shape}]`);
  if (tables.shape.length !== 3 || tables.shape[1] !== 3) throw invalidArgument(`selectAttend: tables must be i32 [rows, 3, pages], got [${tables.shape}]`);
  const { groups, k, maxPages } = args;
  if (!Number.isInteger(groups) || groups < 1 || numHeads % groups !== 0)
    throw invalidArgument(`selectAttend: ${groups} groups do not divide ${numHeads} heads`);
  const width = tables.shape[2];
  const t = tables.i32;
  const at = (row: number, field: number, page: number) => (row * 3 + field) * width + page;
  const pageTable = new Int32Array(b * groups * maxPages).fill(-1);
  const pageCounts = new Int32Array(b * groups);
  const lastPageLens = new Int32Array(b * groups);
  for (let r = 0; r < b; r++) {
    const desc = rows.i32.subarray(r * ROW_FIELDS, (r + 1) * ROW_FIELDS);
    const row = desc[R.tableRow];
    const n = desc[R.numPages];
    const first = desc[R.firstCandidate];
    const count = desc[R.candidates];
    if (row < 0 || row >= tables.shape[0] || n > width || first < 0 || (count > 0 && first + count >= n)) {
      throw invalidArgument(
        `selectAttend: batch row ${r} (table row ${row}, ${n} pages, candidates ${first}+${count}) outside tables [${tables.shape}] or covering the last page`,
      );
    }
    if (count > args.maxCandidates)
      throw invalidArgument(`selectAttend: batch row ${r} has ${count} candidates, more than maxCandidates ${args.maxCandidates}`);
    const scores = candidateScores(args, q, digests, (i) => t[at(row, F.digest, first + i)], r, count);
    for (let g = 0; g < groups; g++) {
      const s = scores.subarray(g * count, (g + 1) * count);
      const list = (r * groups + g) * maxPages;
      let listed = 0;
      for (let p = 0; p < n; p++) {
        const i = p - first;
        if (i >= 0 && i < count) {
          // Its rank: the candidates that beat it (a higher score, or the same and a lower page).
          let rank = 0;
          for (let j = 0; j < count && rank < k; j++) if (s[j] > s[i] || (s[j] === s[i] && j < i)) rank++;
          if (rank >= k) continue;
        }
        if (listed === maxPages) throw invalidArgument(`selectAttend: batch row ${r} lists more than maxPages ${maxPages} pages`);
        pageTable[list + listed++] = t[at(row, F.slot, p)];
      }
      pageCounts[r * groups + g] = listed;
      lastPageLens[r * groups + g] = desc[R.lastPageLen];
    }
  }
  return {
    pageTable: new RefTensor(pageTable, [b, groups, maxPages], 'i32'),
    pageCounts: new RefTensor(pageCounts, [b, groups], 'i32'),
    lastPageLens: new RefTensor(lastPageLens, [b, groups], 'i32'),
  };
}

/** The rows a plan is written into, zeroed (rows without recalls read n = 0). */
function planTarget(t: RefTensor, row: number, b: number, width: number): Int32Array {
  if (t.dtype !== 'i32' || t.shape.length !== 2 || t.shape[1] !== width || row < 0 || row + b > t.shape[0]) {
    throw invalidArgument(`selectResident: planInto needs an i32 [>= ${row + b}, ${width}] tensor, got ${t.dtype} [${t.shape}] at row ${row}`);
  }
  const rows = t.i32.subarray(row * width, (row + b) * width);
  rows.fill(0);
  return rows;
}

export function recallListed(host: RefPageStorage, device: RefPageStorage, copies: RefTensor): void {
  const [b, width] = copies.shape;
  for (let r = 0; r < b; r++) {
    const n = copies.i32[r * width];
    const src: number[] = [];
    const dst: number[] = [];
    for (let j = 0; j < n; j++) {
      src.push(copies.i32[r * width + 1 + 2 * j]);
      dst.push(copies.i32[r * width + 2 + 2 * j]);
    }
    copyPages(host, src, device, dst);
  }
}

/**
 * Batch row r's `count` candidates (digest rows `digestRow(i)`) scored per selection
 * group, f32 [groups, count]: accumulated in f32 in the order `estimate` uses, so the
 * host and device paths see the same scores bit for bit.
 */
function candidateScores(
  args: PageSelectionArgs,
  q: RefTensor,
  digests: RefDigestStorage,
  digestRow: (i: number) => number,
  r: number,
  count: number,
): Float32Array {
  const { numHeads, numKvHeads, headDim: d } = digests.geometry;
  const perGroup = numHeads / args.groups;
  const perKv = numHeads / numKvHeads;
  const scores = new Float32Array(args.groups * count);
  for (let i = 0; i < count; i++) {
    const row = digestRow(i);
    for (let h = 0; h < numHeads; h++) {
      const s = estimateScore(q.f32, (r * numHeads + h) * d, digests.data, digests.offset(row, Math.floor(h / perKv)), d, args.variant);
      scores[Math.floor(h / perGroup) * count + i] += s / perGroup;
    }
  }
  return scores;
}
