import { ReferenceBackend } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { Rng } from '../test-support/random.js';
import { scatterI32Kernel } from './scatter.kernel.js';

const ref = new ReferenceBackend();

describe('scatter_i32 writes what the reference scatterI32 writes', () => {
  it('distinct indices, more updates than a block', () => {
    const rng = new Rng(31);
    const length = 900;
    const target = Array.from({ length }, () => rng.int(100) - 50);
    const at = rng.shuffle(Array.from({ length }, (_, i) => i)).slice(0, 300);
    const updates = at.flatMap((i) => [i, rng.int(1000) - 500]);
    const device = EmuBuffer.from('i32', target);
    emulateKernel(scatterI32Kernel, {}).run({ target: device, updates: EmuBuffer.from('i32', updates), n: at.length, length });
    const want = ref.fromArray(target, [length], 'i32');
    ref.scatterI32(want, ref.fromArray(updates, [at.length, 2], 'i32'));
    expect(Array.from(device.toInt32())).toEqual(Array.from(ref.readSync(want)));
  });

  it('skips indices outside the target instead of writing past it', () => {
    const device = EmuBuffer.from('i32', [1, 2, 3]);
    emulateKernel(scatterI32Kernel, {}).run({ target: device, updates: EmuBuffer.from('i32', [2, 9, -1, 7, 3, 7]), n: 3, length: 3 });
    expect(Array.from(device.toInt32())).toEqual([1, 2, 9]);
  });
});
