/**
 * H2O's and TOVA's decisions on the device (Backend.placeTokenCells, evictTokenCells)
 * on the CUDA backend against the reference: a ragged batch of token-cell table rows
 * (full rows, one still filling, one with an empty cell, rows holding the free cell of
 * their last step) in shuffled table rows, the same integers and f32 scores on both
 * sides. Both compute in f32 with one rounding per addition, so the tables, targets
 * and victims must agree exactly; coarse scores make ties, which the lower position
 * must break.
 */
import { tokenTableLayout, type Backend, type Tensor } from '@arkvale/core';
import { mismatches, result, TOLERANCE, type CheckResult, type Twin } from './twin.js';

/** One batch row: cells in use, whether it holds a free cell, and whether a cell in use is empty. */
type RowShape = readonly [filled: number, free: boolean, hole: boolean];

interface TokenBatch {
  readonly tables: Int32Array;
  readonly rows: number[];
  readonly scores: Float32Array;
  readonly listWidth: number;
}

function tokenBatch(t: Twin, pages: number, pageSize: number, shapes: readonly RowShape[], span: number, coarse: boolean): TokenBatch {
  const L = tokenTableLayout(pages, pageSize);
  const order = Array.from({ length: shapes.length + 1 }, (_, i) => i).sort(() => t.next() - 0.5);
  const tables = new Int32Array(order.length * L.width).map(() => t.int(1000) - 500);
  const bits = new Float32Array(tables.buffer);
  const value = () => (coarse ? t.int(4) / 8 : t.next());
  const rows: number[] = [];
  shapes.forEach(([filled, free, hole], r) => {
    const base = order[r] * L.width;
    // Distinct positions below `span`, as a sequence's cells hold them.
    const positions = new Set<number>();
    while (positions.size < filled) positions.add(t.int(span));
    const held = [...positions];
    tables[base + L.free] = free ? t.int(L.cells) : -1;
    for (let p = 0; p < pages; p++) tables[base + L.slots + p] = t.int(4096);
    for (let c = 0; c < L.cells; c++) {
      tables[base + L.positions + c] = c < filled && !(hole && c === filled >> 1) ? held[c] : -1;
      bits[base + L.scores + c] = c < filled ? value() : 0;
    }
    rows.push(order[r], Math.max(0, ...held) + 1, filled);
  });
  const listWidth = L.cells;
  const scores = Float32Array.from({ length: shapes.length * 2 * listWidth }, value);
  // The newest token scores 0 so far and gets no attention: the lowest of its row, which H2O must keep all the same.
  shapes.forEach(([filled], r) => {
    if (filled === 0) return;
    const base = order[r] * L.width;
    let newest = 0;
    for (let c = 1; c < filled; c++) if (tables[base + L.positions + c] > tables[base + L.positions + newest]) newest = c;
    bits[base + L.scores + newest] = 0;
    scores[r * 2 * listWidth + newest] = 0;
  });
  return { tables, rows, scores, listWidth };
}

/** placeTokenCells then evictTokenCells on one backend, from the batch's tables; the tables, targets and victims after. */
function run(b: Backend, batch: TokenBatch, pages: number, pageSize: number, update: 'accumulate' | 'replace', recentKept: number): Record<string, Tensor> {
  const n = batch.rows.length / 3;
  const L = tokenTableLayout(pages, pageSize);
  const cells = {
    tables: b.fromArray(batch.tables, [batch.tables.length / L.width, L.width], 'i32'),
    pages,
    pageSize,
    rows: b.fromArray(batch.rows, [n, 3], 'i32'),
  };
  const slots = b.fromArray(
    Array.from({ length: n }, (_, r) => 7000 + r),
    [n],
    'i32',
  );
  const offsets = b.fromArray(
    Array.from({ length: n }, (_, r) => r),
    [n],
    'i32',
  );
  b.placeTokenCells!({ ...cells, slots, offsets });
  const into = b.fromArray(new Int32Array(n + 3).fill(-9), [n + 3], 'i32');
  const tokenScores = b.fromArray(batch.scores, [n, 2, batch.listWidth]);
  b.evictTokenCells!({ ...cells, tokenScores, update, recentKept, victimsInto: { tensor: into, row: 2 } });
  return { tables: cells.tables, slots, offsets, victims: into };
}

/** The checks: two table sizes (the 30k shape's 2048 cells among them), TOVA's and H2O's rules, with and without ties. */
export function tokenCellChecks(t: Twin): CheckResult[] {
  const out: CheckResult[] = [];
  if (!t.gpu.placeTokenCells || !t.gpu.evictTokenCells)
    return [result('token cells on the device', 'the backend has no placeTokenCells/evictTokenCells', 1, 0)];
  for (const [pages, pageSize, span] of [
    [4, 16, 200],
    [64, 32, 30_000],
  ] as const) {
    const cells = pages * pageSize;
    const shapes: RowShape[] = [
      [cells, false, false],
      [cells, true, false],
      [cells - 5, false, false],
      [cells, false, true],
      [cells, true, false],
    ];
    for (const coarse of [false, true]) {
      for (const [update, recentKept] of [
        ['replace', 0],
        ['accumulate', Math.floor((cells - 1) / 2)],
      ] as const) {
        const batch = tokenBatch(t, pages, pageSize, shapes, span, coarse);
        const gpu = run(t.gpu, batch, pages, pageSize, update, recentKept);
        const ref = run(t.ref, batch, pages, pageSize, update, recentKept);
        let wrong = 0;
        for (const key of Object.keys(gpu)) wrong += mismatches(t.gpu.readSync(gpu[key]), t.ref.readSync(ref[key]));
        const detail = `${cells} cells, ragged batch of ${shapes.length}, ${update}, ${recentKept} recent kept${coarse ? ', ties' : ''}`;
        out.push(result('placeTokenCells and evictTokenCells (H2O, TOVA)', detail, wrong, TOLERANCE.exact));
      }
    }
  }
  return out;
}
