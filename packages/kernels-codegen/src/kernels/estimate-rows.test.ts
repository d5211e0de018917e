import { asRef, DIGEST_VARIANTS, ReferenceBackend } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { expectClose } from '../test-support/compare.js';
import { Rng } from '../test-support/random.js';
import { batchGeometry, buildBatch, deviceInputs } from '../test-support/selection-batch.js';
import { estimateRowsKernel } from './estimate-rows.kernel.js';
import { estimateKernel, estimatePagesPerBlock } from './estimate.kernel.js';

const ref = new ReferenceBackend();

describe.each(DIGEST_VARIANTS)('estimate_rows %s', (variant) => {
  it.each([
    // The block's page counts differ between the two kernels: a page's bits do not depend on them.
    { groups: 1, rowsKernel: 1, pagesKernel: 3, numHeads: 4 },
    { groups: 4, rowsKernel: 3, pagesKernel: 1, numHeads: 4 },
    { groups: 4, rowsKernel: 0, pagesKernel: 0, numHeads: 4 },
    // Four query heads a KV head (as Llama-3-8B): their box bounds share one shuffle tree.
    { groups: 2, rowsKernel: 0, pagesKernel: 2, numHeads: 8 },
  ])(
    'gives every candidate of a ragged batch what estimate gives its page ($groups group(s); pages a block $rowsKernel and $pagesKernel, 0: estimatePagesPerBlock; $numHeads query heads)',
    ({ groups, rowsKernel, pagesKernel, numHeads }) => {
      const rng = new Rng(21);
      const g = batchGeometry(64, numHeads);
      const rows = [
        { numPages: 9, first: 2, count: 6, residentChance: 0.5 },
        { numPages: 4, first: 1, count: 0, residentChance: 0 },
        { numPages: 7, first: 0, count: 7, residentChance: 0.5 },
      ];
      const batch = buildBatch(rng, { rows, k: 2, groups, variant, coarse: false, exact: false }, g);
      const { maxCandidates } = batch.args;
      const inputs = deviceInputs(batch);
      const out = new EmuBuffer('f32', rows.length * groups * maxCandidates).fill(NaN);
      emulateKernel(estimateRowsKernel, { dtype: 'f16', headDim: g.headDim, variant }).run({
        ...inputs,
        out,
        batch: rows.length,
        maxCandidates,
        tablePages: batch.tablePages,
        numHeads: g.numHeads,
        numKvHeads: g.numKvHeads,
        groups,
        pagesPerBlock: rowsKernel || estimatePagesPerBlock(g.numHeads, g.numKvHeads, g.headDim),
      });
      const got = out.toFloat32();
      rows.forEach((rc, r) => {
        const tableRow = batch.rows.i32[r * 5];
        const digestRows = Array.from({ length: rc.count }, (_, i) => batch.tables.i32[(tableRow * 3 + 1) * batch.tablePages + rc.first + i]);
        const qRow = batch.q.f32.subarray(r * g.numHeads * g.headDim, (r + 1) * g.numHeads * g.headDim);
        const row = (grp: number) => got.subarray((r * groups + grp) * maxCandidates, (r * groups + grp + 1) * maxCandidates);
        // Past the row's candidates: -Infinity, so the whole output is written.
        for (let grp = 0; grp < groups; grp++) expect(Array.from(row(grp).subarray(rc.count))).toEqual(Array(maxCandidates - rc.count).fill(-Infinity));
        if (rc.count === 0) return;
        const single = new EmuBuffer('f32', groups * rc.count);
        emulateKernel(estimateKernel, { dtype: 'f16', headDim: g.headDim, variant }).run({
          q: EmuBuffer.from('f16', qRow),
          digests: inputs.digests,
          rows: EmuBuffer.from('i32', digestRows),
          out: single,
          numPages: rc.count,
          numHeads: g.numHeads,
          numKvHeads: g.numKvHeads,
          groups,
          pagesPerBlock: pagesKernel || estimatePagesPerBlock(g.numHeads, g.numKvHeads, g.headDim),
        });
        const want = asRef(
          ref.estimate(ref.fromArray(qRow, [g.numHeads, g.headDim]), batch.digests, ref.fromArray(digestRows, [rc.count], 'i32'), groups, variant),
        ).f32;
        for (let grp = 0; grp < groups; grp++) {
          const mine = Array.from(row(grp).subarray(0, rc.count));
          // Bit for bit what estimate computes, and close to the reference.
          expect(mine).toEqual(Array.from(single.toFloat32().subarray(grp * rc.count, (grp + 1) * rc.count)));
          expectClose(mine, want.subarray(grp * rc.count, (grp + 1) * rc.count), 1e-5, 1e-5);
        }
      });
    },
  );
});

describe('estimatePagesPerBlock', () => {
  it('gives a block two rounds of (page, KV head set) items: 1 page at 32 KV heads of 128, 4 at 8, at most 8 and what the shared sums hold', () => {
    expect(estimatePagesPerBlock(32, 32, 128)).toBe(1);
    expect(estimatePagesPerBlock(32, 8, 128)).toBe(4);
    expect(estimatePagesPerBlock(64, 8, 128)).toBe(4);
    expect(estimatePagesPerBlock(4, 2, 128)).toBe(8);
    expect(estimatePagesPerBlock(32, 8, 64)).toBe(8);
    expect(estimatePagesPerBlock(256, 2, 256)).toBe(8);
    expect(estimatePagesPerBlock(256, 1, 64)).toBe(8);
    expect(estimatePagesPerBlock(64, 64, 128)).toBe(1);
  });
});
