import { describe, expect, it } from 'vitest';
import type { DType, EvictTokenCellsArgs } from '@arkvale/core';
import { STREAM } from '../native.js';
import { fakeDevice } from '../test-support/fake-device.js';
import type { CudaDevice } from './device.js';
import { evictTokenCells, placeTokenCells } from './token-ops.js';

// 4 pages of 16 cells: [free, 4 slots, 64 positions, 64 scores] = 133 a row.
const WIDTH = 133;

function inputs(d: CudaDevice, shapes: { tables?: number[]; rows?: number[]; scores?: number[] } = {}) {
  const t = (shape: number[], dtype: DType) => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
  return {
    tables: t(shapes.tables ?? [8, WIDTH], 'i32'),
    pages: 4,
    pageSize: 16,
    rows: t(shapes.rows ?? [3, 3], 'i32'),
    scores: t(shapes.scores ?? [3, 1, 48], 'f32'),
    t,
  };
}

describe('token cells on the CUDA backend', () => {
  it('placeTokenCells launches one thread a batch row, evictTokenCells one block a row; both wait for nothing', () => {
    const { d, launches } = fakeDevice();
    const { t, scores, ...cells } = inputs(d);
    placeTokenCells(d, { ...cells, slots: t([3], 'i32'), offsets: t([3], 'i32') });
    const into = t([12], 'i32');
    const before = d.lifetimes.liveTensors;
    const out = evictTokenCells(d, { ...cells, tokenScores: scores, update: 'accumulate', recentKept: 31, victimsInto: { tensor: into, row: 6 } });
    expect(out).toBe(into);
    // The victims went into the given tensor: nothing new stays alive.
    expect(d.lifetimes.liveTensors).toBe(before);
    const own = evictTokenCells(d, { ...cells, tokenScores: scores, update: 'replace', recentKept: 0 });
    expect(own.shape).toEqual([3]);
    expect(launches).toEqual([
      `place_token_cells [1, 1, 1] on ${STREAM.compute}`,
      `evict_token_cells [3, 1, 1] on ${STREAM.compute}`,
      `evict_token_cells [3, 1, 1] on ${STREAM.compute}`,
    ]);
  });

  it('refuses inputs the kernels cannot read, with messages that name them', () => {
    const { d, launches } = fakeDevice();
    const { t, scores, ...cells } = inputs(d);
    const evict = (over: Partial<EvictTokenCellsArgs>) => () =>
      evictTokenCells(d, { ...cells, tokenScores: scores, update: 'accumulate', recentKept: 1, ...over });
    expect(evict({ tables: t([8, 130], 'i32') })).toThrow('evictTokenCells: tables must be i32 [rows, 133] for 4 pages of 16, got [8, 130]');
    expect(evict({ tables: t([8, WIDTH], 'f32') })).toThrow('evictTokenCells tables: expected a i32 tensor, got f32');
    expect(evict({ rows: t([3, 5], 'i32') })).toThrow('evictTokenCells: rows must be i32 [B, 3], got [3, 5]');
    expect(evict({ pages: 0 })).toThrow('pages (0) and pageSize (16) must be integers >= 1');
    expect(evict({ tokenScores: t([2, 1, 48], 'f32') })).toThrow('tokenScores must be f32 [3, groups, width], got [2, 1, 48]');
    expect(evict({ update: 'sum' as 'replace' })).toThrow('update must be "accumulate" or "replace", got "sum"');
    expect(evict({ recentKept: 1.5 })).toThrow('recentKept must be an integer >= 0, got 1.5');
    expect(evict({ victimsInto: { tensor: t([4], 'i32'), row: 2 } })).toThrow('victimsInto rows 2..5 outside 0..4');
    expect(() => placeTokenCells(d, { ...cells, slots: t([2], 'i32'), offsets: t([3], 'i32') })).toThrow('placeTokenCells: slots must be i32 [3], got [2]');
    expect(launches).toEqual([]);
  });
});
