import type {
  KvStorage,
  PageSelectionArgs,
  SelectAttendArgs,
  SelectAttendResult,
  SelectResidentArgs,
  SelectResidentResult,
  Tensor,
  PAGE_TABLE_FIELDS,
  SELECT_ROW_FIELDS,
} from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import { estimatePagesPerBlock } from '@arkvale/kernels-codegen/launch';
import { findEstimateRows, findRecallListed, findScatterI32, findSelectAttend, findSelectResident } from '../generated/index.js';
import type { CudaDevice } from './device.js';
import { asDigests, asStorage, isFp8 } from './kv-ops.js';
import type { CudaTensor } from './tensor.js';

/**
 * The layouts the kernels are compiled for (estimate_rows, select_resident, select_attend), checked
 * against core's constants by the compiler: a change there fails to type-check here.
 */
const TABLE_FIELDS = { slot: 0, digest: 1, host: 2 } as const satisfies typeof PAGE_TABLE_FIELDS;
const ROW_FIELDS = { tableRow: 0, numPages: 1, firstCandidate: 2, candidates: 3, lastPageLen: 4 } as const satisfies typeof SELECT_ROW_FIELDS;
const ROW_WIDTH = Object.keys(ROW_FIELDS).length;

/** Recalls one batch row can plan in select_resident's shared lists (its MAX_RECALLS). */
export const MAX_RECALLS = 1024;

/** The copies one list row holds: rows are [n, (host slot, device slot) x maxCopies]. */
function recallWidth(copies: CudaTensor): number {
  const width = copies.shape[1];
  if (width % 2 !== 1) throw invalidArgument(`recallListed: copies must be [B, 1 + 2n], got [${copies.shape.join(', ')}]`);
  return (width - 1) / 2;
}

const isCount = (n: number) => Number.isInteger(n) && n >= 0;

export function scatterI32(d: CudaDevice, targetT: Tensor, updatesT: Tensor): void {
  const target = d.expect(d.tensor(targetT, 'scatterI32 target'), 'scatterI32 target', ['i32']);
  const updates = d.expect(d.tensor(updatesT, 'scatterI32 updates'), 'scatterI32 updates', ['i32']);
  if (updates.elements % 2 !== 0 || (updates.shape.length === 2 && updates.shape[1] !== 2)) {
    throw invalidArgument(`scatterI32: updates must be [n, 2], got [${updates.shape.join(', ')}]`);
  }
  // The indices stay on the device; the kernel skips any outside the target.
  d.launch(d.kernels.get('scatter_i32', findScatterI32, {}), { target: target.ptr, updates: updates.ptr, n: updates.elements / 2, length: target.elements });
}

/** What both selections take, checked (their messages name `what`): the estimates' inputs and the widths. */
function selectionInputs(d: CudaDevice, what: string, args: PageSelectionArgs) {
  const digests = asDigests(args.digests);
  const g = digests.geometry;
  const q = d.expect(d.tensor(args.q, `${what} q`), `${what} q`, [d.dtype]);
  const tables = d.expect(d.tensor(args.tables, `${what} tables`), `${what} tables`, ['i32'], 3);
  const rows = d.expect(d.tensor(args.rows, `${what} rows`), `${what} rows`, ['i32'], 2);
  const { groups, k, maxCandidates, maxPages } = args;
  const b = rows.shape[0];
  if (rows.shape[1] !== ROW_WIDTH) throw invalidArgument(`${what}: rows must be i32 [B, ${ROW_WIDTH}], got [${rows.shape.join(', ')}]`);
  if (tables.shape[1] !== Object.keys(TABLE_FIELDS).length)
    throw invalidArgument(`${what}: tables must be i32 [rows, 3, pages], got [${tables.shape.join(', ')}]`);
  if (q.elements !== b * g.numHeads * g.headDim) throw invalidArgument(`${what}: q must be [${b}, ${g.numHeads}, ${g.headDim}], got [${q.shape.join(', ')}]`);
  if (!Number.isInteger(groups) || groups < 1 || g.numHeads % groups !== 0)
    throw invalidArgument(`${what}: ${groups} groups do not divide ${g.numHeads} heads`);
  if (!isCount(k) || !isCount(maxCandidates) || !isCount(maxPages)) {
    throw invalidArgument(`${what}: k (${k}), maxCandidates (${maxCandidates}) and maxPages (${maxPages}) must be integers >= 0`);
  }
  return { digests, g, q, tables, rows, b, tablePages: tables.shape[2] };
}

/** estimate_rows: each row's candidate pages scored per group, into a new f32 [B, groups, maxCandidates] workspace. */
function estimateRows(d: CudaDevice, what: string, args: PageSelectionArgs, i: ReturnType<typeof selectionInputs>): CudaTensor {
  const scores = d.empty([i.b, args.groups, args.maxCandidates], 'f32', `${what} scores`);
  d.launch(d.kernels.get('estimate_rows', findEstimateRows, { variant: args.variant, dtype: d.dtype, headDim: i.g.headDim }), {
    q: i.q.ptr,
    digests: i.digests.data.ptr,
    tables: i.tables.ptr,
    rows: i.rows.ptr,
    out: scores.ptr,
    batch: i.b,
    maxCandidates: args.maxCandidates,
    tablePages: i.tablePages,
    numHeads: i.g.numHeads,
    numKvHeads: i.g.numKvHeads,
    groups: args.groups,
    pagesPerBlock: estimatePagesPerBlock(i.g.numHeads, i.g.numKvHeads, i.g.headDim),
  });
  return scores;
}

/**
 * estimate_rows then select_resident on the compute stream: scores and per-candidate
 * state live in workspaces freed right after the launches (stream order keeps them
 * alive for the kernels); nothing is read back.
 */
export function selectResident(d: CudaDevice, args: SelectResidentArgs): SelectResidentResult {
  const inputs = selectionInputs(d, 'selectResident', args);
  const { b, tables, rows, tablePages } = inputs;
  const { groups, k, maxCandidates, maxPages } = args;
  if (k * groups > MAX_RECALLS)
    throw invalidArgument(`selectResident: k x groups = ${k * groups} recalls per row; the CUDA kernel plans at most ${MAX_RECALLS}`);
  const listWidth = 1 + 2 * k * groups;
  const flags = d.empty([b, maxCandidates], 'i32', 'selectResident workspace');
  const best = d.empty([b, maxCandidates], 'f32', 'selectResident workspace');
  const out = {
    pageTable: d.empty([b, 1, maxPages], 'i32', 'selectResident page table'),
    pageCounts: d.empty([b, 1], 'i32', 'selectResident page counts'),
    lastPageLens: d.empty([b, 1], 'i32', 'selectResident last page lengths'),
    copies: d.empty([b, listWidth], 'i32', 'selectResident copy list'),
    plan: args.planInto ? planTarget(d, args.planInto.tensor, b, listWidth) : d.empty([b, listWidth], 'i32', 'selectResident plan'),
  };
  // The kernel writes every element of its rows, so a shared plan tensor needs no clearing.
  const planPtr = args.planInto ? out.plan.ptr + BigInt(args.planInto.row * listWidth * 4) : out.plan.ptr;
  if (args.planInto && (args.planInto.row < 0 || args.planInto.row + b > out.plan.shape[0])) {
    throw invalidArgument(`selectResident: planInto rows ${args.planInto.row}..${args.planInto.row + b} outside 0..${out.plan.shape[0]}`);
  }
  const scores = estimateRows(d, 'selectResident', args, inputs);
  d.launch(d.kernels.get('select_resident', findSelectResident, {}), {
    scores: scores.ptr,
    rows: rows.ptr,
    tables: tables.ptr,
    flags: flags.ptr,
    best: best.ptr,
    pageTable: out.pageTable.ptr,
    pageCounts: out.pageCounts.ptr,
    lastPageLens: out.lastPageLens.ptr,
    copies: out.copies.ptr,
    plan: planPtr,
    batch: b,
    groups,
    k,
    maxCandidates,
    maxPages,
    tablePages,
  });
  for (const w of [scores, flags, best]) d.lifetimes.dispose(w);
  return out;
}

/**
 * Quest's lists: estimate_rows then select_attend (a block per (row, group)) on the
 * compute stream; the scores and the chosen flags live in workspaces freed right after
 * the launches. The page tables are only read, and nothing is read back.
 */
export function selectAttend(d: CudaDevice, args: SelectAttendArgs): SelectAttendResult {
  const inputs = selectionInputs(d, 'selectAttend', args);
  const { b, tables, rows, tablePages } = inputs;
  const { groups, k, maxCandidates, maxPages } = args;
  const flags = d.empty([b, groups, maxCandidates], 'i32', 'selectAttend workspace');
  const out = {
    pageTable: d.empty([b, groups, maxPages], 'i32', 'selectAttend page table'),
    pageCounts: d.empty([b, groups], 'i32', 'selectAttend page counts'),
    lastPageLens: d.empty([b, groups], 'i32', 'selectAttend last page lengths'),
  };
  const scores = estimateRows(d, 'selectAttend', args, inputs);
  d.launch(d.kernels.get('select_attend', findSelectAttend, {}), {
    scores: scores.ptr,
    rows: rows.ptr,
    tables: tables.ptr,
    flags: flags.ptr,
    pageTable: out.pageTable.ptr,
    pageCounts: out.pageCounts.ptr,
    lastPageLens: out.lastPageLens.ptr,
    batch: b,
    groups,
    k,
    maxCandidates,
    maxPages,
    tablePages,
  });
  for (const w of [scores, flags]) d.lifetimes.dispose(w);
  return out;
}

/** A caller's i32 [R, width] plan tensor, checked. */
function planTarget(d: CudaDevice, t: Tensor, b: number, width: number): CudaTensor {
  const plan = d.expect(d.tensor(t, 'selectResident planInto'), 'selectResident planInto', ['i32'], 2);
  if (plan.shape[1] !== width) throw invalidArgument(`selectResident: planInto rows must be ${width} wide, got [${plan.shape.join(', ')}]`);
  if (plan.shape[0] < b) throw invalidArgument(`selectResident: planInto has ${plan.shape[0]} rows for a batch of ${b}`);
  return plan;
}

/**
 * The pages select_resident listed, copied from the mapped pinned host pool into the
 * device pool by one launch on the compute stream (after select_resident, before the
 * attention that reads them). The host pool's bytes must be in place: a backup still
 * on the copy stream is ordered first with awaitCopy, as for copyPages.
 */
export function recallListed(d: CudaDevice, hostT: KvStorage, deviceT: KvStorage, copiesT: Tensor): void {
  const host = asStorage(hostT);
  const device = asStorage(deviceT);
  if (host.location !== 'host' || device.location !== 'device')
    throw invalidArgument(`recallListed: copies from a host pool into a device pool, got ${host.location} -> ${device.location}`);
  // Whole slots as 16-byte words, whatever the format: an fp8 page moves with its scale bytes.
  if (host.pageBytes !== device.pageBytes || isFp8(host.geometry) !== isFp8(device.geometry))
    throw invalidArgument('recallListed: the pools have different page formats');
  const copies = d.expect(d.tensor(copiesT, 'recallListed copies'), 'recallListed copies', ['i32'], 2);
  const maxCopies = recallWidth(copies);
  d.launch(d.kernels.get('recall_listed', findRecallListed, {}), {
    hostPool: host.ptr,
    devicePool: device.ptr,
    copies: copies.ptr,
    batch: copies.shape[0],
    maxCopies,
    pageWords: device.pageBytes / 4,
  });
}
