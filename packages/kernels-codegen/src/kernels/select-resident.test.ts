import { asRef, ReferenceBackend, type SelectResidentResult } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { Rng } from '../test-support/random.js';
import { batchGeometry, buildBatch, deviceInputs, type Batch, type BatchCase, type RowCase } from '../test-support/selection-batch.js';
import { estimateRowsKernel } from './estimate-rows.kernel.js';
import { estimatePagesPerBlock } from './estimate.kernel.js';
import { selectResidentKernel } from './select-resident.kernel.js';

const ref = new ReferenceBackend();

/** estimate_rows then select_resident on the batch, outputs poisoned first; returns them and the updated tables. */
function deviceSelect(batch: Batch): { out: Record<keyof SelectResidentResult, Int32Array>; tables: Int32Array } {
  const { args, g, tablePages } = batch;
  const b = batch.rows.shape[0];
  const width = 1 + 2 * args.k * args.groups;
  const inputs = deviceInputs(batch);
  const scores = new EmuBuffer('f32', b * args.groups * args.maxCandidates).fill(NaN);
  emulateKernel(estimateRowsKernel, { dtype: 'f16', headDim: g.headDim, variant: args.variant }).run({
    ...inputs,
    out: scores,
    batch: b,
    maxCandidates: args.maxCandidates,
    tablePages,
    numHeads: g.numHeads,
    numKvHeads: g.numKvHeads,
    groups: args.groups,
    pagesPerBlock: estimatePagesPerBlock(g.numHeads, g.numKvHeads, g.headDim),
  });
  const poisoned = (n: number) => new EmuBuffer('i32', n).fill(-77);
  const out = {
    pageTable: poisoned(b * args.maxPages),
    pageCounts: poisoned(b),
    lastPageLens: poisoned(b),
    copies: poisoned(b * width),
    plan: poisoned(b * width),
  };
  emulateKernel(selectResidentKernel, {}).run({
    scores,
    rows: inputs.rows,
    tables: inputs.tables,
    flags: poisoned(b * args.maxCandidates),
    best: new EmuBuffer('f32', b * args.maxCandidates).fill(NaN),
    ...out,
    batch: b,
    groups: args.groups,
    k: args.k,
    maxCandidates: args.maxCandidates,
    maxPages: args.maxPages,
    tablePages,
  });
  const read = (e: EmuBuffer) => e.toInt32();
  return {
    out: {
      pageTable: read(out.pageTable),
      pageCounts: read(out.pageCounts),
      lastPageLens: read(out.lastPageLens),
      copies: read(out.copies),
      plan: read(out.plan),
    },
    tables: inputs.tables.toInt32(),
  };
}

function expectSameSelection(batch: Batch): SelectResidentResult {
  const device = deviceSelect(batch);
  const want = ref.selectResident(batch.args);
  for (const key of ['plan', 'copies', 'pageTable', 'pageCounts', 'lastPageLens'] as const) {
    expect(Array.from(device.out[key]), key).toEqual(Array.from(asRef(want[key]).i32));
  }
  expect(Array.from(device.tables), 'updated page tables').toEqual(Array.from(batch.tables.i32));
  return want;
}

const row = (numPages: number, first: number, count: number, residentChance: number, maxResident?: number): RowCase => ({
  numPages,
  first,
  count,
  residentChance,
  maxResident,
});

describe('select_resident selects, applies and lists exactly as the reference selectResident', () => {
  const cases: [string, BatchCase][] = [
    [
      'one group, ragged rows, one with no candidates',
      { rows: [row(44, 2, 40, 0.5), row(9, 2, 0, 0), row(30, 1, 25, 0.3)], k: 8, groups: 1, variant: 'cuboid-max', coarse: false },
    ],
    ['ties (coarse scores), four groups', { rows: [row(40, 2, 34, 0.5), row(20, 1, 16, 0.6)], k: 6, groups: 4, variant: 'cuboid-mean', coarse: true }],
    ['four groups, more recalls than k', { rows: [row(40, 2, 34, 0.5), row(24, 1, 20, 0.6)], k: 6, groups: 4, variant: 'cuboid-max', coarse: false }],
    ['ties, fewer victims than wanted pages', { rows: [row(70, 2, 64, 0.15), row(12, 2, 8, 0.5)], k: 20, groups: 1, variant: 'cuboid-center', coarse: true }],
    ['k >= candidates', { rows: [row(14, 2, 10, 0.4), row(7, 1, 5, 0.5), row(16, 2, 12, 0.5)], k: 12, groups: 2, variant: 'cuboid-max', coarse: false }],
    ['k = 0', { rows: [row(12, 1, 10, 0.5), row(5, 0, 0, 0)], k: 0, groups: 1, variant: 'cuboid-max', coarse: false }],
  ];
  it.each(cases)('%s', (_name, c) => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 2; trial++) expectSameSelection(buildBatch(rng, c));
  });

  it("more candidates than threads, few recalls (the decode step's usual shape)", () => {
    const rng = new Rng(12);
    const want = expectSameSelection(
      buildBatch(rng, { rows: [row(700, 2, 680, 0.97), row(530, 4, 520, 0.97)], k: 29, groups: 1, variant: 'cuboid-max', coarse: false }),
    );
    // Some recalls happened, and fewer than k.
    const n = asRef(want.plan).i32[0];
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(29);
  });

  it('eight groups over more candidates than threads', () => {
    const rng = new Rng(14);
    const c: BatchCase = { rows: [row(700, 2, 680, 0.5), row(560, 3, 540, 0.95)], k: 20, groups: 8, variant: 'cuboid-max', coarse: false };
    const want = expectSameSelection(buildBatch(rng, c, batchGeometry(32, 8, 2)));
    // Both rows recall (pages share 24 digests, so ties are many and residents win them).
    const plan = asRef(want.plan).i32;
    const width = 1 + 2 * c.k * c.groups;
    expect(plan[0]).toBeGreaterThan(0);
    expect(plan[width]).toBeGreaterThan(0);
  });

  it('twenty groups, each choosing two pages', () => {
    const rng = new Rng(15);
    const c: BatchCase = { rows: [row(50, 2, 45, 0.5), row(30, 1, 25, 0.4)], k: 2, groups: 20, variant: 'cuboid-mean', coarse: false };
    expectSameSelection(buildBatch(rng, c, batchGeometry(32, 20, 4)));
  });

  it('more candidates than a block holds in registers (4,096): every loop reads them chunk by chunk', () => {
    const rng = new Rng(16);
    // Row 0 has fewer victims than wanted pages (the wanted pages' search runs), row 1 the
    // reverse (the victims' search runs). Pages share 24 digests, so the top 200 reach past
    // the first score's ties, where residents win.
    const c: BatchCase = { rows: [row(4400, 2, 4300, 0.5, 24), row(4300, 1, 4200, 0.5)], k: 200, groups: 1, variant: 'cuboid-max', coarse: false };
    const want = expectSameSelection(buildBatch(rng, c));
    const plan = asRef(want.plan).i32;
    const width = 1 + 2 * c.k * c.groups;
    expect(plan[0]).toBeGreaterThan(0);
    expect(plan[0]).toBeLessThan(c.k);
    expect(plan[width]).toBeGreaterThan(0);
    expect(plan[width]).toBeLessThan(c.k);
  });

  it('more candidates than threads with ties: the search runs into the tie half of the key', () => {
    const rng = new Rng(13);
    expectSameSelection(buildBatch(rng, { rows: [row(600, 2, 590, 0.1, 29)], k: 29, groups: 1, variant: 'cuboid-max', coarse: true }));
  });
});
