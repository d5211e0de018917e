// Self-test checks of memory: the caching allocator under churn, pinned host
// memory and its views.
import { MiB, check, firstDifference, randomBytes } from './util.mjs';

export const memoryChecks = [
  {
    name: 'allocator churn',
    run({ addon, rand }) {
      const before = addon.allocatorStats();
      const live = [];
      let misaligned = 0;
      for (let step = 0; step < 5000; step++) {
        if (live.length > 0 && (live.length > 200 || rand() < 0.45)) {
          const [block] = live.splice((rand() * live.length) | 0, 1);
          addon.free(block.ptr);
          continue;
        }
        const bytes = rand() < 0.2 ? 2 * MiB + ((rand() * 62 * MiB) | 0) : 1 + ((rand() * 512 * 1024) | 0);
        const ptr = addon.alloc(bytes, 'allocator churn');
        if (ptr % 256n !== 0n) misaligned++;
        const tag = step & 0xff;
        addon.memset(ptr, tag, Math.min(bytes, 4096), 0, 'allocator churn (tagging)');
        live.push({ ptr, bytes, tag });
      }
      check(misaligned === 0, `${misaligned} blocks not 256-byte aligned`);
      // The memory behind a sample of live blocks is real and still holds its tag.
      for (const block of live.slice(0, 16)) {
        const got = new Uint8Array(Math.min(block.bytes, 4096));
        addon.download(block.ptr, got, 0, 'allocator churn (reading tags)');
        check(
          got.every((b) => b === block.tag),
          `block ${block.ptr.toString(16)} lost its tag`,
        );
      }
      for (const block of live) addon.free(block.ptr);
      const after = addon.allocatorStats();
      const mallocs = after.cudaMallocCalls - before.cudaMallocCalls;
      check(after.allocatedBytes === before.allocatedBytes, `allocatedBytes ${after.allocatedBytes} after freeing everything`);
      check(mallocs <= 250, `5000 operations took ${mallocs} cudaMalloc calls`);
      addon.releaseCached();
      const released = addon.allocatorStats();
      check(released.reservedBytes <= before.reservedBytes, `releaseCached left ${released.reservedBytes} bytes reserved`);
      return `${mallocs} cudaMalloc calls for 5000 operations, peak ${after.slabs} slabs, ${(after.reservedBytes / MiB).toFixed(0)} MiB reserved`;
    },
  },
  {
    name: 'pinned host memory and views',
    run({ addon, rand }) {
      const block = addon.hostAlloc(3 * MiB, 'self-test host pool');
      check(block.host !== 0n && block.device !== 0n, 'hostAlloc returned a null address');
      const view = new Uint8Array(addon.hostView(block.host, 3 * MiB));
      const data = randomBytes(rand, 3 * MiB);
      view.set(data);
      // The device alias reads the same bytes: copy them to device memory and back.
      const dev = addon.alloc(3 * MiB, 'self-test mapped copy');
      addon.copy(dev, block.device, 3 * MiB, 0, 'mapped host -> device');
      const back = new Uint8Array(3 * MiB);
      addon.download(dev, back, 0, 'mapped round trip');
      check(firstDifference(back, data) === -1, 'bytes read through the device alias differ');
      const inner = new Uint8Array(addon.hostView(block.host + 4096n, 100));
      check(inner[0] === data[4096], 'a view inside the block starts at its address');
      addon.hostFree(block.host);
      check(view.byteLength === 0 && inner.byteLength === 0, 'views are detached by hostFree');
      addon.free(dev);
      return '3 MiB mapped, views detached after hostFree';
    },
  },
];
