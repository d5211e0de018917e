/**
 * The token-level policies' decisions on the device (Backend.placeTokenCells,
 * evictTokenCells) over reference tensors: plain loops, the oracle of the CUDA kernels,
 * written as the host's `afterTokenStep` and the policies' `victim` are.
 */
import {
  TOKEN_ROW_FIELDS as R,
  tokenTableLayout,
  type EvictTokenCellsArgs,
  type PlaceTokenCellsArgs,
  type TokenCellArgs,
  type TokenTableLayout,
} from '../backend.js';
import { invalidArgument } from '../errors.js';
import { RefTensor, asRef } from './tensor.js';

const ROW_FIELDS = Object.keys(R).length;

/** One batch row: where its table row starts, its new token's position and its cells in use. */
interface RowView {
  readonly base: number;
  readonly position: number;
  readonly filled: number;
}

/** The arguments both operations share, checked (messages name `what`). */
function tokenInputs(what: string, args: TokenCellArgs) {
  const { pages, pageSize } = args;
  if (!Number.isInteger(pages) || pages < 1 || !Number.isInteger(pageSize) || pageSize < 1) {
    throw invalidArgument(`${what}: pages (${pages}) and pageSize (${pageSize}) must be integers >= 1`);
  }
  const layout = tokenTableLayout(pages, pageSize);
  const tables = asRef(args.tables);
  const rows = asRef(args.rows);
  if (tables.dtype !== 'i32' || tables.shape.length !== 2 || tables.shape[1] !== layout.width) {
    throw invalidArgument(`${what}: tables must be i32 [rows, ${layout.width}] for ${pages} pages of ${pageSize}, got ${tables.dtype} [${tables.shape}]`);
  }
  if (rows.dtype !== 'i32' || rows.shape.length !== 2 || rows.shape[1] !== ROW_FIELDS) {
    throw invalidArgument(`${what}: rows must be i32 [B, ${ROW_FIELDS}], got ${rows.dtype} [${rows.shape}]`);
  }
  const t = tables.i32;
  // The scores are f32 bits in the same memory.
  const bits = new Float32Array(t.buffer, t.byteOffset, t.length);
  const seen = new Set<number>();
  const view = (r: number): RowView => {
    const row = rows.i32[r * ROW_FIELDS + R.tableRow];
    const filled = rows.i32[r * ROW_FIELDS + R.filled];
    if (row < 0 || row >= tables.shape[0] || seen.has(row)) {
      throw invalidArgument(`${what}: batch row ${r} names table row ${row}, outside 0..${tables.shape[0] - 1} or named twice`);
    }
    if (filled < 0 || filled > layout.cells) throw invalidArgument(`${what}: batch row ${r} has ${filled} cells in use, outside 0..${layout.cells}`);
    seen.add(row);
    return { base: row * layout.width, position: rows.i32[r * ROW_FIELDS + R.position], filled };
  };
  return { layout, t, bits, b: rows.shape[0], view };
}

export function placeTokenCells(args: PlaceTokenCellsArgs): void {
  const { layout: L, t, bits, b, view } = tokenInputs('placeTokenCells', args);
  const slots = asRef(args.slots);
  const offsets = asRef(args.offsets);
  for (const [name, x] of [
    ['slots', slots],
    ['offsets', offsets],
  ] as const) {
    if (x.dtype !== 'i32' || x.data.length !== b) throw invalidArgument(`placeTokenCells: ${name} must be i32 [${b}], got ${x.dtype} [${x.shape}]`);
  }
  for (let r = 0; r < b; r++) {
    const { base, position } = view(r);
    const free = t[base + L.free];
    if (free < 0) continue;
    if (free >= L.cells) throw invalidArgument(`placeTokenCells: batch row ${r} has free cell ${free}, outside 0..${L.cells - 1}`);
    slots.i32[r] = t[base + L.slots + Math.floor(free / args.pageSize)];
    offsets.i32[r] = free % args.pageSize;
    t[base + L.positions + free] = position;
    bits[base + L.scores + free] = 0;
    t[base + L.free] = -1;
  }
}

export function evictTokenCells(args: EvictTokenCellsArgs): RefTensor {
  const { layout: L, t, bits, b, view } = tokenInputs('evictTokenCells', args);
  const probs = asRef(args.tokenScores);
  if (probs.dtype !== 'f32' || probs.shape.length !== 3 || probs.shape[0] !== b) {
    throw invalidArgument(`evictTokenCells: tokenScores must be f32 [${b}, groups, width], got ${probs.dtype} [${probs.shape}]`);
  }
  if (args.update !== 'accumulate' && args.update !== 'replace')
    throw invalidArgument(`evictTokenCells: update must be "accumulate" or "replace", got "${String(args.update)}"`);
  if (!Number.isInteger(args.recentKept) || args.recentKept < 0)
    throw invalidArgument(`evictTokenCells: recentKept must be an integer >= 0, got ${args.recentKept}`);
  const listStride = probs.shape[1] * probs.shape[2];
  const victims = args.victimsInto ? victimTarget(args.victimsInto, b) : new Int32Array(b);
  for (let r = 0; r < b; r++) {
    const { base, filled } = view(r);
    if (filled > probs.shape[2]) throw invalidArgument(`evictTokenCells: batch row ${r} has ${filled} cells in use, more than tokenScores' ${probs.shape[2]}`);
    for (let c = 0; c < filled; c++) {
      const p = probs.f32[r * listStride + c];
      // Float32Array stores round, as the host's layer.scores does.
      bits[base + L.scores + c] = args.update === 'accumulate' ? bits[base + L.scores + c] + p : p;
    }
    victims[r] = filled === L.cells ? victimOf(t, bits, base, L, filled, args.recentKept) : -1;
    const v = victims[r];
    if (v >= 0) {
      t[base + L.positions + v] = -1;
      bits[base + L.scores + v] = 0;
      t[base + L.free] = v;
    }
  }
  return args.victimsInto ? asRef(args.victimsInto.tensor) : new RefTensor(victims, [b], 'i32');
}

/** The policies' rule: the lowest score among cells outside the `recent` most recent positions, ties to the lower position (-1: none). */
function victimOf(t: Int32Array, bits: Float32Array, base: number, L: TokenTableLayout, filled: number, recent: number): number {
  const pos = (c: number) => t[base + L.positions + c];
  const score = (c: number) => bits[base + L.scores + c];
  const held: number[] = [];
  for (let c = 0; c < filled; c++) if (pos(c) >= 0) held.push(pos(c));
  const kept = new Set(held.sort((a, z) => z - a).slice(0, recent));
  let best = -1;
  for (let c = 0; c < filled; c++) {
    if (pos(c) < 0 || kept.has(pos(c))) continue;
    if (best < 0 || score(c) < score(best) || (score(c) === score(best) && pos(c) < pos(best))) best = c;
  }
  return best;
}

/** The elements a batch's victims are written into. */
function victimTarget(into: NonNullable<EvictTokenCellsArgs['victimsInto']>, b: number): Int32Array {
  const t = asRef(into.tensor);
  if (t.dtype !== 'i32' || t.shape.length !== 1 || into.row < 0 || into.row + b > t.shape[0]) {
    throw invalidArgument(`evictTokenCells: victimsInto needs an i32 [>= ${into.row + b}] tensor, got ${t.dtype} [${t.shape}] at row ${into.row}`);
  }
  return t.i32.subarray(into.row, into.row + b);
}
