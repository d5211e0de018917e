import { decodeSelectionPlan, planPageSelection } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { Rng } from '../test-support/random.js';
import { applySelectionKernel, selectPagesKernel } from './select-pages.kernel.js';

function devicePlan(scores: Float32Array, groups: number, resident: number[], k: number, freeSlots: number): Int32Array {
  const count = resident.length;
  const plan = new EmuBuffer('i32', 1 + 2 * count).fill(-99);
  emulateKernel(selectPagesKernel, {}).run({
    scores: EmuBuffer.from('f32', scores), resident: EmuBuffer.from('i32', resident),
    chosen: new EmuBuffer('i32', count), best: new EmuBuffer('f32', count), victimByRank: new EmuBuffer('i32', count),
    plan, count, groups, k, freeSlots,
  });
  return plan.toInt32();
}

describe('select_pages plans exactly what planPageSelection plans', () => {
  const rng = new Rng(5);
  const cases: [string, number, number, number, number, boolean][] = [
    // name, count, groups, k, free slots, coarse scores (many ties)
    ['one group', 40, 1, 8, 0, false],
    ['four groups, ties', 64, 4, 6, 2, true],
    ['k >= count', 10, 2, 12, 0, false],
    ['many free slots', 30, 1, 10, 50, true],
    ['more candidates than threads', 700, 2, 40, 3, true],
    ['k = 0', 12, 1, 0, 0, false],
  ];
  it.each(cases)('%s', (_name, count, groups, k, free, coarse) => {
    for (let trial = 0; trial < 3; trial++) {
      const scores = Float32Array.from({ length: groups * count }, () => (coarse ? rng.int(6) - 3 : rng.uniform(-5, 5)));
      if (coarse) scores[0] = -0;
      const resident = Array.from({ length: count }, () => (rng.next() < 0.4 ? 1 : 0));
      const want = planPageSelection(scores, groups, resident, k, free).recalls;
      expect(decodeSelectionPlan(devicePlan(scores, groups, resident, k, free))).toEqual(want);
    }
  });

  it('apply_selection moves recalled pages into their victims\' slots and lists the copies', () => {
    const plan = [3, 4, -1, 7, 2, 9, 5];
    const deviceSlots = EmuBuffer.from('i32', [10, -1, 12, -1, -1, 15, -1, -1, -1, -1]);
    const hostSlots = EmuBuffer.from('i32', [100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    const copyList = new EmuBuffer('i32', 7);
    emulateKernel(applySelectionKernel, {}).run({
      plan: EmuBuffer.from('i32', plan), hostSlots, freeSlotList: EmuBuffer.from('i32', [20, 21]), deviceSlots, copyList,
    });
    expect(Array.from(deviceSlots.toInt32())).toEqual([10, -1, -1, -1, 20, -1, -1, 12, -1, 15]);
    expect(Array.from(copyList.toInt32())).toEqual([3, 104, 20, 107, 12, 109, 15]);
  });
});
