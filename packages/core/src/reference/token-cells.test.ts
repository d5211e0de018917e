import { describe, expect, it } from 'vitest';
import { tokenTableLayout } from '../backend.js';
import { ReferenceBackend } from './reference-backend.js';
import { asRef } from './tensor.js';

const backend = new ReferenceBackend();
// Two pages of two cells: [free, slot x2, position x4, score bits x4].
const L = tokenTableLayout(2, 2);

/** A table of `rows` rows, row r given as its free cell, slots, positions and scores. */
function table(rows: { free: number; slots: number[]; positions: number[]; scores: number[] }[]) {
  const data = new Int32Array(rows.length * L.width);
  const bits = new Float32Array(data.buffer);
  rows.forEach((r, i) => {
    const base = i * L.width;
    data[base + L.free] = r.free;
    data.set(r.slots, base + L.slots);
    data.set(r.positions, base + L.positions);
    bits.set(r.scores, base + L.scores);
  });
  return backend.fromArray(data, [rows.length, L.width], 'i32');
}

function row(t: ReturnType<typeof table>, r: number) {
  const data = asRef(t).i32.subarray(r * L.width, (r + 1) * L.width);
  const bits = new Float32Array(data.buffer, data.byteOffset, data.length);
  return {
    free: data[L.free],
    positions: Array.from(data.subarray(L.positions, L.positions + L.cells)),
    scores: Array.from(bits.subarray(L.scores, L.scores + L.cells)),
  };
}

const rows = (values: number[][]) => backend.fromArray(values.flat(), [values.length, 3], 'i32');

describe('the reference evictTokenCells', () => {
  it('accumulates or replaces scores and frees the lowest cell outside the recent positions, ties to the lower position', () => {
    const t = table([
      { free: -1, slots: [7, 3], positions: [5, 2, 9, 7], scores: [0.25, 0.25, 0, 0.5] },
      { free: -1, slots: [4, -1], positions: [0, 1, 2, -1], scores: [0.5, 0.5, 0, 0] },
    ]);
    // Row 0 (table row 1) fills 3 of 4 cells: no eviction; row 1 (table row 0) is full.
    const probs = backend.fromArray([0.5, 0.25, 0.25, 0, 0.25, 0.25, 1, 0], [2, 1, 4]);
    const victims = backend.evictTokenCells({
      tables: t,
      pages: 2,
      pageSize: 2,
      rows: rows([
        [1, 2, 3],
        [0, 9, 4],
      ]),
      tokenScores: probs,
      update: 'accumulate',
      recentKept: 1,
    });
    // Table row 0: scores 0.5, 0.5, 1, 0.5; position 9 (cell 2) is the most recent and kept; cells 0, 1 and 3 tie at 0.5: position 2 goes.
    expect(Array.from(backend.readSync(victims))).toEqual([-1, 1]);
    expect(row(t, 0)).toEqual({ free: 1, positions: [5, -1, 9, 7], scores: [0.5, 0, 1, 0.5] });
    expect(row(t, 1)).toEqual({ free: -1, positions: [0, 1, 2, -1], scores: [1, 0.75, 0.25, 0] });
  });

  it('replaces scores (TOVA) and, with no recent positions kept, may free the newest token', () => {
    const t = table([{ free: -1, slots: [7, 3], positions: [5, 2, 9, 7], scores: [0, 0, 0, 0] }]);
    const into = backend.fromArray([-5, -5, -5], [3], 'i32');
    const probs = backend.fromArray([0.5, 0.25, 0.125, 0.125], [1, 1, 4]);
    const out = backend.evictTokenCells({
      tables: t,
      pages: 2,
      pageSize: 2,
      rows: rows([[0, 9, 4]]),
      tokenScores: probs,
      update: 'replace',
      recentKept: 0,
      victimsInto: { tensor: into, row: 1 },
    });
    // Cells 2 and 3 tie at 0.125: position 7 (cell 3) is the lower. The victims land at element 1 of the given tensor.
    expect(out).toBe(into);
    expect(Array.from(backend.readSync(into))).toEqual([-5, 3, -5]);
    expect(row(t, 0)).toEqual({ free: 3, positions: [5, 2, 9, -1], scores: [0.5, 0.25, 0.125, 0] });
  });

  it('refuses inputs it cannot read, with messages that name them', () => {
    const t = table([{ free: -1, slots: [7, 3], positions: [5, 2, 9, 7], scores: [0, 0, 0, 0] }]);
    const probs = backend.fromArray([0, 0, 0, 0], [1, 1, 4]);
    const args = { tables: t, pages: 2, pageSize: 2, rows: rows([[0, 9, 4]]), tokenScores: probs, update: 'accumulate' as const, recentKept: 1 };
    expect(() => backend.evictTokenCells({ ...args, pages: 3 })).toThrow('evictTokenCells: tables must be i32 [rows, 16] for 3 pages of 2, got i32 [1,11]');
    expect(() => backend.evictTokenCells({ ...args, rows: rows([[1, 9, 4]]) })).toThrow('batch row 0 names table row 1, outside 0..0 or named twice');
    expect(() => backend.evictTokenCells({ ...args, rows: rows([[0, 9, 5]]) })).toThrow('batch row 0 has 5 cells in use, outside 0..4');
    expect(() => backend.evictTokenCells({ ...args, update: 'sum' as 'replace' })).toThrow('update must be "accumulate" or "replace", got "sum"');
    expect(() => backend.evictTokenCells({ ...args, recentKept: -1 })).toThrow('recentKept must be an integer >= 0, got -1');
    expect(() => backend.evictTokenCells({ ...args, tokenScores: backend.fromArray([0, 0, 0], [1, 1, 3]) })).toThrow(
      "batch row 0 has 4 cells in use, more than tokenScores' 3",
    );
    expect(() => backend.evictTokenCells({ ...args, victimsInto: { tensor: backend.fromArray([0], [1], 'i32'), row: 1 } })).toThrow(
      'victimsInto needs an i32 [>= 2] tensor, got i32 [1] at row 1',
    );
  });
});

describe('the reference placeTokenCells', () => {
  it('gives a row with a free cell that cell as its target and places the token there; other rows keep their targets', () => {
    const t = table([
      { free: 3, slots: [7, 3], positions: [5, 2, 9, -1], scores: [0.5, 0.25, 1, 0] },
      { free: -1, slots: [4, -1], positions: [0, 1, 2, -1], scores: [0.5, 0.5, 0, 0] },
    ]);
    const slots = backend.fromArray([-1, 4], [2], 'i32');
    const offsets = backend.fromArray([-1, 1], [2], 'i32');
    backend.placeTokenCells({
      tables: t,
      pages: 2,
      pageSize: 2,
      rows: rows([
        [0, 10, 4],
        [1, 3, 3],
      ]),
      slots,
      offsets,
    });
    // Cell 3 is page 1 (slot 3), offset 1.
    expect(Array.from(backend.readSync(slots))).toEqual([3, 4]);
    expect(Array.from(backend.readSync(offsets))).toEqual([1, 1]);
    expect(row(t, 0)).toEqual({ free: -1, positions: [5, 2, 9, 10], scores: [0.5, 0.25, 1, 0] });
    expect(() =>
      backend.placeTokenCells({ tables: t, pages: 2, pageSize: 2, rows: rows([[0, 10, 4]]), slots: backend.fromArray([0, 0], [2], 'i32'), offsets }),
    ).toThrow('placeTokenCells: slots must be i32 [1], got i32 [2]');
  });
});
