import { asRef, ReferenceBackend, tokenTableLayout } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { Rng } from '../test-support/random.js';
import { evictTokenCellsKernel, placeTokenCellsKernel } from './token-cells.kernel.js';

const ref = new ReferenceBackend();

/**
 * One batch row: cells in use, whether it holds a free cell, whether some cells in use
 * are empty (-1), and whether its newest `run` positions are consecutive (as H2O keeps
 * them; the kernel's one-count path).
 */
interface RowCase {
  readonly filled: number;
  readonly free?: boolean;
  readonly holes?: boolean;
  readonly run?: number;
}

interface TokenCase {
  readonly pages: number;
  readonly pageSize: number;
  readonly rows: readonly RowCase[];
  readonly groups: number;
  /** Scores from a few values: many ties, so the tie rule (lower position) decides. */
  readonly coarse: boolean;
  /** Positions spread up to this (bisection over a wide range). */
  readonly span: number;
}

/** Random tables (one spare row, rows in shuffled order), row descriptors and token scores. */
function batch(rng: Rng, c: TokenCase) {
  const L = tokenTableLayout(c.pages, c.pageSize);
  const b = c.rows.length;
  const order = rng.shuffle(Array.from({ length: b + 1 }, (_, i) => i));
  const tables = new Int32Array((b + 1) * L.width).map(() => rng.int(1000) - 500);
  const bits = new Float32Array(tables.buffer);
  const value = () => (c.coarse ? rng.int(3) / 4 : rng.uniform(0, 1));
  const rows: number[] = [];
  c.rows.forEach((row, r) => {
    const base = order[r] * L.width;
    // Distinct positions, the newest (the step's token) among them.
    const run = Math.min(row.run ?? 0, row.filled);
    const older = rng.shuffle(Array.from({ length: c.span - run }, (_, i) => i)).slice(0, row.filled - run);
    const positions = rng.shuffle([...older, ...Array.from({ length: run }, (_, i) => c.span - run + i)]);
    const newest = Math.max(...positions, 0);
    tables[base + L.free] = row.free ? rng.int(L.cells) : -1;
    for (let p = 0; p < c.pages; p++) tables[base + L.slots + p] = rng.int(500);
    for (let cell = 0; cell < L.cells; cell++) {
      const used = cell < row.filled;
      tables[base + L.positions + cell] = used && !(row.holes && rng.next() < 0.2) ? positions[cell] : -1;
      bits[base + L.scores + cell] = used ? value() : 0;
    }
    rows.push(order[r], newest + 1, row.filled);
  });
  const width = L.cells + 3;
  const scores = Float32Array.from({ length: b * c.groups * width }, value);
  return { L, tables, rows, scores, width };
}

function expectSameEviction(c: TokenCase, seed: number, update: 'accumulate' | 'replace', recentKept: number): void {
  const { L, tables, rows, scores, width } = batch(new Rng(seed), c);
  const b = c.rows.length;
  const device = { tables: EmuBuffer.from('i32', tables), victims: new EmuBuffer('i32', b).fill(-77) };
  emulateKernel(evictTokenCellsKernel, {}).run({
    tokenScores: EmuBuffer.from('f32', scores),
    rows: EmuBuffer.from('i32', rows),
    ...device,
    batch: b,
    pages: c.pages,
    cells: L.cells,
    listWidth: width,
    listStride: c.groups * width,
    accumulate: update === 'accumulate' ? 1 : 0,
    recentKept,
  });
  const want = ref.fromArray(tables, [tables.length / L.width, L.width], 'i32');
  const victims = ref.evictTokenCells({
    tables: want,
    pages: c.pages,
    pageSize: c.pageSize,
    rows: ref.fromArray(rows, [b, 3], 'i32'),
    tokenScores: ref.fromArray(scores, [b, c.groups, width]),
    update,
    recentKept,
  });
  expect(Array.from(device.victims.toInt32()), 'victims').toEqual(Array.from(asRef(victims).i32));
  expect(Array.from(device.tables.toInt32()), 'tables').toEqual(Array.from(asRef(want).i32));
}

describe('evict_token_cells evicts exactly as the reference evictTokenCells', () => {
  // H2O keeps floor((cells - 1) / 2) recent positions: rows with that run, one more (the count finds too many) and one less.
  const ragged = (cells: number): RowCase[] => {
    const kept = Math.floor((cells - 1) / 2);
    return [
      { filled: cells },
      { filled: cells - 3 },
      { filled: cells, holes: true },
      { filled: 0 },
      { filled: cells, run: kept },
      { filled: cells, run: kept + 1 },
      { filled: cells, run: kept - 1 },
      { filled: cells, run: kept, holes: true },
    ];
  };
  const cases: [string, TokenCase][] = [
    ['a ragged batch, two lists a row', { pages: 4, pageSize: 4, rows: ragged(16), groups: 2, coarse: false, span: 40 }],
    ['ties: the lower position goes', { pages: 3, pageSize: 4, rows: ragged(12), groups: 1, coarse: true, span: 30 }],
    ['more cells than threads, positions up to 30k', { pages: 20, pageSize: 32, rows: ragged(640), groups: 1, coarse: true, span: 30_000 }],
  ];
  it.each(cases)('%s', (_name, c) => {
    const cells = c.pages * c.pageSize;
    // TOVA (replace, nothing kept), H2O (accumulate, half kept), and more kept than a row holds (no victim).
    for (const [update, recentKept] of [
      ['replace', 0],
      ['accumulate', Math.floor((cells - 1) / 2)],
      ['accumulate', cells + 1],
    ] as const) {
      for (let trial = 0; trial < 2; trial++) expectSameEviction(c, 51 + trial, update, recentKept);
    }
  });
});

describe('place_token_cells places exactly as the reference placeTokenCells', () => {
  it('rows with a free cell get its target and the token; the others keep theirs', () => {
    const rng = new Rng(61);
    const c: TokenCase = {
      pages: 3,
      pageSize: 4,
      rows: [{ filled: 12, free: true }, { filled: 9 }, { filled: 12, free: true }],
      groups: 1,
      coarse: false,
      span: 50,
    };
    const { L, tables, rows } = batch(rng, c);
    const targets = { slots: Array.from({ length: 3 }, () => rng.int(100)), offsets: Array.from({ length: 3 }, () => rng.int(4)) };
    const device = { tables: EmuBuffer.from('i32', tables), slots: EmuBuffer.from('i32', targets.slots), offsets: EmuBuffer.from('i32', targets.offsets) };
    emulateKernel(placeTokenCellsKernel, {}).run({ rows: EmuBuffer.from('i32', rows), ...device, batch: 3, pages: c.pages, pageSize: c.pageSize });
    const want = {
      tables: ref.fromArray(tables, [tables.length / L.width, L.width], 'i32'),
      slots: ref.fromArray(targets.slots, [3], 'i32'),
      offsets: ref.fromArray(targets.offsets, [3], 'i32'),
    };
    ref.placeTokenCells({ ...want, pages: c.pages, pageSize: c.pageSize, rows: ref.fromArray(rows, [3, 3], 'i32') });
    for (const key of ['tables', 'slots', 'offsets'] as const) expect(Array.from(device[key].toInt32()), key).toEqual(Array.from(asRef(want[key]).i32));
    // The row without a free cell kept the host's target.
    expect(device.slots.toInt32()[1]).toBe(targets.slots[1]);
  });
});
