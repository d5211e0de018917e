import { describe, expect, it } from 'vitest';
import { pageBytes as slotBytes, type KvGeometry } from '@arkvale/core';
import { STREAM, type CudaAddon } from '../native.js';
import type { CudaDevice } from './device.js';
import { ESTIMATE_MAX_HEADS } from '@arkvale/kernels-codegen/launch';
import { appendKv, createDigestStorage, createKvStorage, CudaKvStorage, digestPages, kvDtypeRefusal, PageCopies } from './kv-ops.js';
import { fakeDevice } from '../test-support/fake-device.js';
import { missingKernelError } from './kernels.js';

const geometry: KvGeometry = { numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 64, pageSize: 16, bytesPerElement: 2 };
const pageBytes = 2 * 2 * 16 * 64 * 2;

/** An addon that records the copy and ordering calls it gets. */
function recordingDevice(): { d: CudaDevice; calls: string[] } {
  const calls: string[] = [];
  let events = 0;
  const addon = {
    recordEvent: (stream: number) => (calls.push(`record ${stream} -> e${++events}`), events),
    waitEvent: (stream: number, e: number) => calls.push(`wait ${stream} on e${e}`),
    releaseEvent: (e: number) => calls.push(`release e${e}`),
    copyPages: (_dst: bigint, dstSlots: Int32Array, _src: bigint, srcSlots: Int32Array, bytes: number, stream: number) =>
      calls.push(`copy [${srcSlots.join(',')}] -> [${dstSlots.join(',')}] ${bytes} B on ${stream}`),
  } as unknown as CudaAddon;
  return { d: { addon } as CudaDevice, calls };
}

const device = new CudaKvStorage('device', 8, geometry, pageBytes, 0x10000n, 0n);
const host = new CudaKvStorage('host', 8, geometry, pageBytes, 0x90000n, 0x90000n);

describe('page copies between the CUDA pools', () => {
  it('backups run on the copy stream after the compute stream; awaiting one makes compute wait on the newest backup', () => {
    const { d, calls } = recordingDevice();
    const copies = new PageCopies(d);
    const first = copies.copy(device, [1, 2], host, [5, 6]);
    const second = copies.copy(device, [3], host, [7]);
    expect(calls).toEqual([
      `record ${STREAM.compute} -> e1`,
      `wait ${STREAM.deviceToHost} on e1`,
      'release e1',
      `copy [1,2] -> [5,6] ${pageBytes} B on ${STREAM.deviceToHost}`,
      `record ${STREAM.deviceToHost} -> e2`,
      `record ${STREAM.compute} -> e3`,
      `wait ${STREAM.deviceToHost} on e3`,
      'release e3',
      `copy [3] -> [7] ${pageBytes} B on ${STREAM.deviceToHost}`,
      `record ${STREAM.deviceToHost} -> e4`,
      'release e2',
    ]);
    calls.length = 0;
    copies.await(first);
    // The newest backup event orders both backups; the second ticket needs no other wait.
    copies.await(second);
    expect(calls).toEqual([`wait ${STREAM.compute} on e4`]);
  });

  it('recalls and copies within a pool stay on the compute stream, with no events', () => {
    const { d, calls } = recordingDevice();
    const copies = new PageCopies(d);
    copies.copy(host, [5], device, [0]);
    copies.copy(device, [0], device, [4]);
    expect(calls).toEqual([`copy [5] -> [0] ${pageBytes} B on ${STREAM.compute}`, `copy [0] -> [4] ${pageBytes} B on ${STREAM.compute}`]);
  });

  it('refuses slots outside a pool and lists of different lengths', () => {
    const { d, calls } = recordingDevice();
    const copies = new PageCopies(d);
    expect(() => copies.copy(device, [8], host, [0])).toThrow(/device slot 8 outside 0..7/);
    expect(() => copies.copy(device, [1, 2], host, [0])).toThrow(/differ in length/);
    expect(calls).toEqual([]);
  });
});

describe('a kernel the build lacks', () => {
  it('names the specialisation and the command that adds it', () => {
    const e = missingKernelError('paged_decode', { dtype: 'f16', headDim: 96, pageSize: 16, group: 2 });
    expect(e.code).toBe('UNSUPPORTED_MODEL');
    expect(e.message).toBe(
      'no CUDA kernel paged_decode for dtype f16, headDim 96, pageSize 16, group 2 in this build of @arkvale/cuda-binding; ' +
        'add it with: ARKVALE_CUDA_EXTRA="--dtype f16 --head-dim 96 --page-size 16 --group 2" pnpm --filter @arkvale/cuda-binding build',
    );
  });
});

describe('digest storage', () => {
  it("refuses more query heads than the estimate kernels' shared sums hold, before allocating", () => {
    const { d, calls } = recordingDevice();
    const wide = { ...geometry, numHeads: ESTIMATE_MAX_HEADS + 2, numKvHeads: 2 };
    expect(() => createDigestStorage(d, 4, wide)).toThrow(/258 query heads; the CUDA estimate kernels sum at most 256 per page/);
    expect(calls).toEqual([]);
  });
});

describe('fp8 pages on the CUDA backend', () => {
  const fp8: KvGeometry = { ...geometry, kvDtype: 'fp8' };
  // core's fp8 slot: 2 x 2 heads x 16 tokens x 64 codes, then 64 scale bytes (a multiple of 16 already).
  const fp8PageBytes = 2 * 2 * 16 * 64 + 2 * 2 * 16;

  /** A device whose addon records allocations and launches. */
  function allocatingDevice(): { d: CudaDevice; launches: string[]; allocs: string[] } {
    const { d, launches } = fakeDevice();
    const allocs: string[] = [];
    const addon = d.addon as unknown as Record<string, unknown>;
    const alloc = addon.alloc as (bytes: number, what: string) => bigint;
    addon.alloc = (bytes: number, what: string) => (allocs.push(`device ${bytes} B: ${what}`), alloc(bytes, what));
    addon.hostAlloc = (bytes: number, what: string) => (allocs.push(`host ${bytes} B: ${what}`), { host: 0x7000000n, device: 0x8000000n });
    return { d, launches, allocs };
  }

  it("allocate pools of core's fp8 page bytes, on the device and pinned on the host", () => {
    expect(slotBytes(fp8)).toBe(fp8PageBytes);
    const { d, allocs } = allocatingDevice();
    const device = createKvStorage(d, 'device', 8, fp8);
    const host = createKvStorage(d, 'host', 3, fp8);
    expect([device.pageBytes, host.pageBytes]).toEqual([fp8PageBytes, fp8PageBytes]);
    expect(host.ptr).toBe(0x8000000n);
    expect(allocs).toEqual([
      `device ${8 * fp8PageBytes} B: device KV pool (8 fp8 pages of 16 tokens)`,
      `host ${3 * fp8PageBytes} B: host KV pool (3 fp8 pages of 16 tokens)`,
    ]);
    // Small pages: the scale bytes are padded to 16.
    const tiny = { ...fp8, numKvHeads: 1, pageSize: 2, headDim: 32 };
    expect(createKvStorage(d, 'device', 1, tiny).pageBytes).toBe(2 * 2 * 32 + 16);
  });

  it('are refused at head dims the fp8 kernels cannot lay out, naming the flag, before any memory is allocated', () => {
    const { d, allocs } = allocatingDevice();
    for (const location of ['device', 'host'] as const) {
      expect(() => createKvStorage(d, location, 8, { ...fp8, headDim: 96 })).toThrow(
        expect.objectContaining({
          code: 'INVALID_CONFIG',
          message: expect.stringContaining('--kv-dtype fp8 on the CUDA backend needs a head dim that is a power of two'),
        }),
      );
    }
    expect(kvDtypeRefusal(fp8)).toBeNull();
    expect(kvDtypeRefusal(geometry)).toBeNull();
    expect(allocs).toEqual([]);
  });

  it('append and digest with the fp8 kernel families, which take the same arguments', () => {
    const { d, launches } = allocatingDevice();
    const pool = createKvStorage(d, 'device', 8, fp8);
    const t = (shape: number[], dtype: 'f16' | 'i32') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
    appendKv(d, pool, t([5, 2, 64], 'f16'), t([5, 2, 64], 'f16'), t([5], 'i32'), t([5], 'i32'));
    const digests = createDigestStorage(d, 4, fp8);
    digestPages(d, pool, t([3], 'i32'), digests, t([3], 'i32'), 'cuboid-max');
    expect(launches).toEqual([
      `kv_append_fp8_f16_hd64_ps16 [5, 1, 1] on ${STREAM.compute}`,
      `page_digest_fp8_cuboid_max_f16_hd64_ps16 [3, 2, 1] on ${STREAM.compute}`,
    ]);
    // Digests stay in the activation dtype.
    expect(digests.data.dtype).toBe('f16');
  });

  it('copy as whole slots of fp8 page bytes, and never into a pool of the other format', () => {
    const { d, calls } = recordingDevice();
    const copies = new PageCopies(d);
    const a = new CudaKvStorage('device', 8, fp8, fp8PageBytes, 0x10000n, 0n);
    const b = new CudaKvStorage('host', 8, fp8, fp8PageBytes, 0x90000n, 0x90000n);
    copies.copy(b, [2], a, [5]);
    expect(calls).toEqual([`copy [2] -> [5] ${fp8PageBytes} B on ${STREAM.compute}`]);
    // A 16-bit pool of the same byte size is still another format.
    const plain = new CudaKvStorage('device', 8, geometry, fp8PageBytes, 0x20000n, 0n);
    expect(() => copies.copy(a, [1], plain, [0])).toThrow('copyPages: the pools have different page formats');
  });
});
