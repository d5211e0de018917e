import { asRef, ReferenceBackend, type SelectAttendArgs } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { Rng } from '../test-support/random.js';
import { batchGeometry, buildBatch, deviceInputs, type Batch, type RowCase } from '../test-support/selection-batch.js';
import { estimateRowsKernel } from './estimate-rows.kernel.js';
import { estimatePagesPerBlock } from './estimate.kernel.js';
import { selectAttendKernel } from './select-attend.kernel.js';

const ref = new ReferenceBackend();

/** Quest's rows: every page resident, candidates 0..numPages-2 (none when under budget). */
const quest = (numPages: number, candidates: boolean): RowCase => ({ numPages, first: 0, count: candidates ? numPages - 1 : 0, residentChance: 1 });

interface QuestCase {
  readonly rows: readonly RowCase[];
  readonly k: number;
  readonly groups: number;
  readonly coarse: boolean;
  readonly heads?: number;
}

/** A Quest batch: select_resident's random batch, with list widths for Quest's lists. */
function questBatch(rng: Rng, c: QuestCase): { batch: Batch; args: SelectAttendArgs } {
  const heads = c.heads ?? 4;
  const batch = buildBatch(rng, { ...c, variant: 'cuboid-max' }, batchGeometry(32, heads, heads / 2));
  const maxPages = Math.max(...c.rows.map((r) => r.numPages - r.count + Math.min(c.k, r.count)));
  return { batch, args: { ...batch.args, maxPages } };
}

/** estimate_rows then select_attend, outputs poisoned first. */
function deviceLists(batch: Batch, args: SelectAttendArgs): Record<'pageTable' | 'pageCounts' | 'lastPageLens', Int32Array> {
  const { g, tablePages } = batch;
  const b = batch.rows.shape[0];
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
    pageTable: poisoned(b * args.groups * args.maxPages),
    pageCounts: poisoned(b * args.groups),
    lastPageLens: poisoned(b * args.groups),
  };
  emulateKernel(selectAttendKernel, {}).run({
    scores,
    rows: inputs.rows,
    tables: inputs.tables,
    flags: poisoned(b * args.groups * args.maxCandidates),
    ...out,
    batch: b,
    groups: args.groups,
    k: args.k,
    maxCandidates: args.maxCandidates,
    maxPages: args.maxPages,
    tablePages,
  });
  // The tables are only read.
  expect(Array.from(inputs.tables.toInt32()), 'page tables').toEqual(Array.from(batch.tables.i32));
  return { pageTable: out.pageTable.toInt32(), pageCounts: out.pageCounts.toInt32(), lastPageLens: out.lastPageLens.toInt32() };
}

function expectSameLists(c: QuestCase, seed: number): void {
  const rng = new Rng(seed);
  const { batch, args } = questBatch(rng, c);
  const device = deviceLists(batch, args);
  const want = ref.selectAttend(args);
  for (const key of ['pageTable', 'pageCounts', 'lastPageLens'] as const) {
    expect(Array.from(device[key]), key).toEqual(Array.from(asRef(want[key]).i32));
  }
}

describe('select_attend lists exactly as the reference selectAttend', () => {
  const cases: [string, QuestCase][] = [
    ['one group per head, ragged rows, one under budget', { rows: [quest(40, true), quest(9, false), quest(25, true)], k: 7, groups: 4, coarse: false }],
    ['ties (coarse scores): the lower page wins', { rows: [quest(40, true), quest(20, true)], k: 6, groups: 4, coarse: true }],
    ['one shared group, ties', { rows: [quest(33, true), quest(12, true)], k: 5, groups: 1, coarse: true }],
    ['k >= candidates', { rows: [quest(10, true), quest(6, true)], k: 12, groups: 2, coarse: false }],
    ['k = 0: the last page alone', { rows: [quest(12, true), quest(3, false)], k: 0, groups: 4, coarse: false }],
  ];
  it.each(cases)('%s', (_name, c) => {
    for (let trial = 0; trial < 3; trial++) expectSameLists(c, 31 + trial);
  });

  it('more pages than threads, with and without ties', () => {
    expectSameLists({ rows: [quest(700, true), quest(530, true)], k: 40, groups: 2, coarse: false }, 41);
    expectSameLists({ rows: [quest(600, true)], k: 29, groups: 2, coarse: true }, 42);
  });
});
