// Self-test checks of copies and ordering: uploads and downloads through the
// staging ring (pieces larger than the ring included), events across streams,
// copyPages in every direction, event timing, and what counts as a sync.
import { MiB, check, firstDifference, randomBytes } from './util.mjs';

const COMPUTE = 0;
const TO_HOST = 1;
const TO_DEVICE = 2;

/** copyPages reference: page dst[i] <- page src[i]. */
function copyPagesReference(to, dstSlots, from, srcSlots, pageBytes) {
  const out = to.slice();
  dstSlots.forEach((d, i) => out.set(from.subarray(srcSlots[i] * pageBytes, (srcSlots[i] + 1) * pageBytes), d * pageBytes));
  return out;
}

export const copyChecks = [
  {
    name: 'upload/download round trips',
    run({ addon, rand, ringBytes }) {
      const sizes = [1, 255, 4096, MiB + 3, ringBytes, ringBytes + 1, 2 * ringBytes + 7, 5 * ringBytes - 1];
      for (const size of sizes) {
        const data = randomBytes(rand, size);
        const original = data.slice();
        const dev = addon.alloc(size, 'round trip');
        addon.upload(dev, data, COMPUTE, `upload of ${size} bytes`);
        data.fill(0); // the ring holds its own copy: the caller's buffer is free at once
        const back = new Uint8Array(size);
        addon.download(dev, back, COMPUTE, `download of ${size} bytes`);
        const at = firstDifference(back, original);
        check(at === -1, `${size} bytes: first difference at byte ${at}`);
        addon.free(dev);
      }
      // Many uploads queued at once on the copy stream (the ring wraps and waits), then read back.
      const blocks = Array.from({ length: 12 }, () => {
        const data = randomBytes(rand, Math.floor(ringBytes / 3) + 17);
        const dev = addon.alloc(data.length, 'ring wrap');
        addon.upload(dev, data, TO_DEVICE, 'ring wrap upload');
        return { dev, data };
      });
      addon.synchronize(TO_DEVICE);
      blocks.forEach(({ dev, data }, i) => {
        const back = new Uint8Array(data.length);
        addon.download(dev, back, COMPUTE, 'ring wrap download');
        const at = firstDifference(back, data);
        check(at === -1, `queued upload ${i} differs at byte ${at}`);
        addon.free(dev);
      });
      return `byte-exact for ${sizes.length} sizes up to ${((5 * ringBytes) / MiB).toFixed(1)} MiB (ring ${ringBytes / MiB} MiB), 12 queued uploads`;
    },
  },
  {
    name: 'events order work across streams',
    run({ addon, rand }) {
      const size = 8 * MiB;
      const data = randomBytes(rand, size);
      const a = addon.alloc(size, 'event source');
      const b = addon.alloc(size, 'event target');
      addon.upload(a, data, TO_DEVICE, 'upload on the host->device stream');
      const uploaded = addon.recordEvent(TO_DEVICE);
      addon.waitEvent(COMPUTE, uploaded);
      addon.copy(b, a, size, COMPUTE, 'copy after the upload');
      const copied = addon.recordEvent(COMPUTE);
      addon.synchronize(COMPUTE);
      check(addon.eventDone(copied), 'an event before a synchronize is done after it');
      const back = new Uint8Array(size);
      addon.download(b, back, TO_HOST, 'download on the device->host stream');
      check(firstDifference(back, data) === -1, 'the copy did not see the upload');
      addon.releaseEvent(uploaded);
      addon.releaseEvent(copied);
      const reused = addon.recordEvent(COMPUTE);
      check(reused === copied || reused === uploaded, `released ids are reused (got ${reused})`);
      addon.releaseEvent(reused);
      addon.free(a);
      addon.free(b);
      return 'upload (stream 2) -> waitEvent -> copy (stream 0) -> download (stream 1)';
    },
  },
  {
    name: 'event timing',
    run({ addon }) {
      const bytes = 256 * MiB;
      const buf = addon.alloc(bytes, 'timing buffer');
      const start = addon.recordEvent(COMPUTE);
      for (let i = 0; i < 8; i++) addon.memset(buf, i, bytes, COMPUTE, 'timed memset');
      const end = addon.recordEvent(COMPUTE);
      addon.synchronize(COMPUTE);
      const ms = addon.elapsedMs(start, end);
      check(Number.isFinite(ms) && ms > 0, `elapsedMs gave ${ms}`);
      addon.releaseEvent(start);
      addon.releaseEvent(end);
      addon.free(buf);
      return `2 GiB of memset in ${ms.toFixed(3)} ms (${((2 * 1024) / ms).toFixed(0)} GiB/s)`;
    },
  },
  {
    name: 'copyPages host->device, device->host, device->device',
    run({ addon, rand }) {
      const pageBytes = 4096 + 256;
      const pages = 24;
      const host = addon.hostAlloc(pages * pageBytes, 'self-test host pages');
      const hostView = new Uint8Array(addon.hostView(host.host, pages * pageBytes));
      const hostData = randomBytes(rand, pages * pageBytes);
      hostView.set(hostData);
      const devA = addon.alloc(pages * pageBytes, 'device pages A');
      const devB = addon.alloc(pages * pageBytes, 'device pages B');
      const devAData = randomBytes(rand, pages * pageBytes);
      const devBData = randomBytes(rand, pages * pageBytes);
      addon.upload(devA, devAData, COMPUTE, 'device pages A');
      addon.upload(devB, devBData, COMPUTE, 'device pages B');
      addon.synchronize(COMPUTE);

      // Runs of consecutive slots on both sides, broken runs, and single pages.
      const h2dDst = Int32Array.from([3, 4, 5, 9, 0, 17, 18, 23]);
      const h2dSrc = Int32Array.from([10, 11, 12, 2, 7, 20, 21, 1]);
      addon.copyPages(devA, h2dDst, host.host, h2dSrc, pageBytes, TO_DEVICE, 'copyPages (host -> device, 8 pages)');
      addon.synchronize(TO_DEVICE);
      const afterH2d = copyPagesReference(devAData, h2dDst, hostData, h2dSrc, pageBytes);
      const gotA = new Uint8Array(pages * pageBytes);
      addon.download(devA, gotA, COMPUTE, 'read device pages A');
      check(firstDifference(gotA, afterH2d) === -1, 'host -> device pages differ from the reference');

      const d2dDst = Int32Array.from([0, 1, 2, 3, 12, 6]);
      const d2dSrc = Int32Array.from([4, 5, 6, 7, 12, 23]);
      addon.copyPages(devB, d2dDst, devA, d2dSrc, pageBytes, COMPUTE, 'copyPages (device -> device, 6 pages)');
      const afterD2d = copyPagesReference(devBData, d2dDst, afterH2d, d2dSrc, pageBytes);
      const gotB = new Uint8Array(pages * pageBytes);
      addon.download(devB, gotB, COMPUTE, 'read device pages B');
      check(firstDifference(gotB, afterD2d) === -1, 'device -> device pages differ from the reference');

      const d2hDst = Int32Array.from([0, 1, 2, 14, 15, 8]);
      const d2hSrc = Int32Array.from([20, 21, 22, 3, 4, 0]);
      const done = addon.recordEvent(COMPUTE);
      addon.waitEvent(TO_HOST, done);
      addon.copyPages(host.host, d2hDst, devB, d2hSrc, pageBytes, TO_HOST, 'copyPages (device -> host, 6 pages)');
      addon.synchronize(TO_HOST);
      const afterD2h = copyPagesReference(hostData, d2hDst, afterD2d, d2hSrc, pageBytes);
      check(firstDifference(hostView, afterD2h) === -1, 'device -> host pages differ from the reference');
      addon.releaseEvent(done);
      addon.hostFree(host.host);
      addon.free(devA);
      addon.free(devB);
      return `${pageBytes}-byte pages, scattered slots, all three directions`;
    },
  },
  {
    name: 'syncCount counts downloads and synchronize, not queued work',
    run({ addon, rand, kernels }) {
      const k = kernels.residualAdd;
      const n = 4096;
      const a = addon.alloc(n * 2, 'sync a');
      const out = addon.alloc(n * 2, 'sync out');
      addon.synchronize(); // the ring is idle after this: no staging wait below
      const before = addon.syncCount();
      addon.upload(a, randomBytes(rand, n * 2), COMPUTE, 'queued upload');
      addon.copy(out, a, n * 2, COMPUTE, 'queued copy');
      addon.memset(out, 0, n * 2, COMPUTE, 'queued memset');
      addon.launch(k.name, k.grid({ a, b: a, out, n }), k.pack({ a, b: a, out, n }), COMPUTE);
      const ev = addon.recordEvent(COMPUTE);
      addon.waitEvent(TO_HOST, ev);
      addon.eventDone(ev);
      const queued = addon.syncCount() - before;
      check(queued === 0, `upload, copy, memset, launch and events counted ${queued} syncs`);
      addon.download(out, new Uint8Array(n * 2), COMPUTE, 'counted download');
      check(addon.syncCount() - before === 1, `a download counted ${addon.syncCount() - before} syncs`);
      addon.synchronize(COMPUTE);
      addon.synchronize();
      check(addon.syncCount() - before === 3, 'each synchronize counts one');
      addon.releaseEvent(ev);
      addon.free(a);
      addon.free(out);
      return '0 for queued work, 1 per download, 1 per synchronize';
    },
  },
];
