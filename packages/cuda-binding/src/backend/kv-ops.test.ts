import { describe, expect, it } from 'vitest';
import type { KvGeometry } from '@arkvale/core';
import { STREAM, type CudaAddon } from '../native.js';
import type { CudaDevice } from './device.js';
import { ESTIMATE_MAX_HEADS } from '@arkvale/kernels-codegen/launch';
import { createDigestStorage, createKvStorage, CudaKvStorage, PageCopies } from './kv-ops.js';
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
  it('are refused, naming the flag, before any memory is allocated', () => {
    const d = { dtype: 'f16', addon: {} } as unknown as CudaDevice;
    for (const location of ['device', 'host'] as const) {
      expect(() => createKvStorage(d, location, 8, { ...geometry, kvDtype: 'fp8' })).toThrow(
        expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('--kv-dtype fp8 is not supported on the CUDA backend yet') }),
      );
    }
  });
});
