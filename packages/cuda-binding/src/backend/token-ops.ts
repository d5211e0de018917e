import type { EvictTokenCellsArgs, PlaceTokenCellsArgs, Tensor, TokenCellArgs, TOKEN_ROW_FIELDS } from '@arkvale/core';
import { invalidArgument, tokenTableLayout } from '@arkvale/core';
import { findEvictTokenCells, findPlaceTokenCells } from '../generated/index.js';
import type { CudaDevice } from './device.js';
import type { CudaTensor } from './tensor.js';

/**
 * The row layout the kernels are compiled for (place_token_cells, evict_token_cells),
 * checked against core's constant by the compiler: a change there fails to type-check here.
 */
const ROW_FIELDS = { tableRow: 0, position: 1, filled: 2 } as const satisfies typeof TOKEN_ROW_FIELDS;
const ROW_WIDTH = Object.keys(ROW_FIELDS).length;

/** What both operations take, checked (their messages name `what`). */
function tokenInputs(d: CudaDevice, what: string, args: TokenCellArgs) {
  const { pages, pageSize } = args;
  if (!Number.isInteger(pages) || pages < 1 || !Number.isInteger(pageSize) || pageSize < 1) {
    throw invalidArgument(`${what}: pages (${pages}) and pageSize (${pageSize}) must be integers >= 1`);
  }
  // The kernels compute their fields' offsets from (pages, cells) as core's layout places them.
  const layout = tokenTableLayout(pages, pageSize);
  const tables = d.expect(d.tensor(args.tables, `${what} tables`), `${what} tables`, ['i32'], 2);
  const rows = d.expect(d.tensor(args.rows, `${what} rows`), `${what} rows`, ['i32'], 2);
  if (tables.shape[1] !== layout.width) {
    throw invalidArgument(`${what}: tables must be i32 [rows, ${layout.width}] for ${pages} pages of ${pageSize}, got [${tables.shape.join(', ')}]`);
  }
  if (rows.shape[1] !== ROW_WIDTH) throw invalidArgument(`${what}: rows must be i32 [B, ${ROW_WIDTH}], got [${rows.shape.join(', ')}]`);
  return { layout, tables, rows, b: rows.shape[0] };
}

/** One thread per batch row on the compute stream: rows with a free cell write the step's append targets (nothing is read back). */
export function placeTokenCells(d: CudaDevice, args: PlaceTokenCellsArgs): void {
  const { tables, rows, b } = tokenInputs(d, 'placeTokenCells', args);
  const target = (t: Tensor, name: string): CudaTensor => {
    const c = d.expect(d.tensor(t, `placeTokenCells ${name}`), `placeTokenCells ${name}`, ['i32']);
    if (c.elements !== b) throw invalidArgument(`placeTokenCells: ${name} must be i32 [${b}], got [${c.shape.join(', ')}]`);
    return c;
  };
  const slots = target(args.slots, 'slots');
  const offsets = target(args.offsets, 'offsets');
  d.launch(d.kernels.get('place_token_cells', findPlaceTokenCells, {}), {
    rows: rows.ptr,
    tables: tables.ptr,
    slots: slots.ptr,
    offsets: offsets.ptr,
    batch: b,
    pages: args.pages,
    pageSize: args.pageSize,
  });
}

/**
 * One block per batch row on the compute stream: scores updated and each full row's
 * victim freed in the tables, the victims written where `victimsInto` says (or into a
 * new tensor); nothing is read back.
 */
export function evictTokenCells(d: CudaDevice, args: EvictTokenCellsArgs): Tensor {
  const { layout, tables, rows, b } = tokenInputs(d, 'evictTokenCells', args);
  const scores = d.expect(d.tensor(args.tokenScores, 'evictTokenCells tokenScores'), 'evictTokenCells tokenScores', ['f32'], 3);
  // Each row's cells in use are read from its list 0 (the kernel reads no more than the list holds).
  if (scores.shape[0] !== b) throw invalidArgument(`evictTokenCells: tokenScores must be f32 [${b}, groups, width], got [${scores.shape.join(', ')}]`);
  if (args.update !== 'accumulate' && args.update !== 'replace')
    throw invalidArgument(`evictTokenCells: update must be "accumulate" or "replace", got "${String(args.update)}"`);
  if (!Number.isInteger(args.recentKept) || args.recentKept < 0)
    throw invalidArgument(`evictTokenCells: recentKept must be an integer >= 0, got ${args.recentKept}`);
  let victims: CudaTensor;
  let at = 0;
  if (args.victimsInto) {
    victims = d.expect(d.tensor(args.victimsInto.tensor, 'evictTokenCells victimsInto'), 'evictTokenCells victimsInto', ['i32'], 1);
    at = args.victimsInto.row;
    if (!Number.isInteger(at) || at < 0 || at + b > victims.shape[0]) {
      throw invalidArgument(`evictTokenCells: victimsInto rows ${at}..${at + b} outside 0..${victims.shape[0]}`);
    }
  } else victims = d.empty([b], 'i32', 'evictTokenCells victims');
  d.launch(d.kernels.get('evict_token_cells', findEvictTokenCells, {}), {
    tokenScores: scores.ptr,
    rows: rows.ptr,
    tables: tables.ptr,
    victims: victims.ptr + BigInt(at * 4),
    batch: b,
    pages: args.pages,
    cells: layout.cells,
    listWidth: scores.shape[2],
    listStride: scores.shape[1] * scores.shape[2],
    accumulate: args.update === 'accumulate' ? 1 : 0,
    recentKept: args.recentKept,
  });
  return victims;
}
