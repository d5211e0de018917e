import { ReferenceBackend, type KvGeometry, type RefKvStorage } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { EmuBuffer } from '../emulator/memory.js';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { roundHalf } from '../ir/half.js';
import { Rng } from '../test-support/random.js';
import { copyPagesKernel, recallListedKernel } from './copy-pages.kernel.js';

const ref = new ReferenceBackend();
const g: KvGeometry = { numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 64, pageSize: 16, bytesPerElement: 2 };
const pageElems = 2 * g.numKvHeads * g.pageSize * g.headDim;

/** f16 pool contents as raw 32-bit words (what the copy kernels move). */
function words(pool: RefKvStorage): EmuBuffer {
  const halves = EmuBuffer.from('f16', pool.data);
  const bits = halves.mem.a as Uint16Array;
  return EmuBuffer.from('u32', new Uint32Array(bits.buffer, bits.byteOffset, bits.length / 2));
}

function pool(location: 'device' | 'host', slots: number, seed: number, geometry = g): RefKvStorage {
  const p = ref.createKvStorage(location, slots, geometry) as RefKvStorage;
  p.data.set(Float32Array.from(new Rng(seed).array(p.data.length), roundHalf));
  return p;
}

describe('page copies move whole pages as the reference copyPages does', () => {
  it('copy_pages with slot lists', () => {
    const src = pool('device', 4, 1);
    const dst = pool('host', 6, 2);
    const dstWords = words(dst);
    emulateKernel(copyPagesKernel, {}).run({
      src: words(src),
      dst: dstWords,
      srcSlots: EmuBuffer.from('i32', [2, 0, 3]),
      dstSlots: EmuBuffer.from('i32', [5, 1, 0]),
      numPages: 3,
      pageWords: pageElems / 2,
    });
    ref.copyPages(src, [2, 0, 3], dst, [5, 1, 0]);
    expect(Array.from(dstWords.toArray())).toEqual(Array.from(words(dst).toArray()));
  });

  // A page's blocks copy 8192 words (32 KB) a round: pages of 2048 words (a quarter of
  // a round), of 2560 (a round's part not a multiple of a block's), and of 49152 (six rounds).
  it.each([
    ['2048', g],
    ['2560', { ...g, pageSize: 20 }],
    ['49152', { ...g, numKvHeads: 8, numHeads: 8, pageSize: 96 }],
  ] as const)(
    "recall_listed follows every batch row's copy list (rows of 1 + 2 * maxCopies) as the reference recallListed does: pages of %s words",
    (_, geometry) => {
      const host = pool('host', 6, 5, geometry);
      const device = pool('device', 5, 6, geometry);
      const deviceWords = words(device);
      const maxCopies = 3;
      // Row 0 recalls two pages, row 1 none, row 2 three; entries past n are junk.
      const lists = [2, 4, 1, 0, 3, 77, 77, 0, 9, 9, 9, 9, 9, 9, 3, 5, 0, 2, 2, 1, 4];
      emulateKernel(recallListedKernel, {}).run({
        hostPool: words(host),
        devicePool: deviceWords,
        copies: EmuBuffer.from('i32', lists),
        batch: 3,
        maxCopies,
        pageWords: (2 * geometry.numKvHeads * geometry.pageSize * geometry.headDim) / 2,
      });
      ref.recallListed(host, device, ref.fromArray(lists, [3, 1 + 2 * maxCopies], 'i32'));
      expect(Array.from(deviceWords.toArray())).toEqual(Array.from(words(device).toArray()));
    },
  );
});
