import { describe, expect, it } from 'vitest';
import type { DType, KvGeometry, SelectAttendArgs, SelectResidentArgs } from '@arkvale/core';
import { STREAM } from '../native.js';
import { fakeDevice } from '../test-support/fake-device.js';
import type { CudaDevice } from './device.js';
import { CudaDigestStorage, CudaKvStorage } from './kv-ops.js';
import { MAX_RECALLS, recallListed, scatterI32, selectAttend, selectResident } from './select-ops.js';
import { findRecallListed } from '../generated/index.js';

const g: KvGeometry = { numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 64, pageSize: 16, bytesPerElement: 2 };
const pageBytes = 2 * 2 * 16 * 64 * 2;

function selectArgs(
  d: CudaDevice,
  over: Partial<SelectResidentArgs> = {},
  shapes: { q?: number[]; tables?: number[]; rows?: number[] } = {},
): SelectResidentArgs {
  const t = (shape: number[], dtype: DType) => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));
  return {
    q: t(shapes.q ?? [3, 4, 64], 'f16'),
    digests: new CudaDigestStorage(10, g, t([10, 2, 2, 64], 'f16')),
    variant: 'cuboid-max',
    groups: 1,
    tables: t(shapes.tables ?? [4, 3, 50], 'i32'),
    rows: t(shapes.rows ?? [3, 5], 'i32'),
    k: 29,
    maxCandidates: 960,
    maxPages: 40,
    ...over,
  };
}

describe('selectResident on the CUDA backend', () => {
  it('launches estimate_rows over (candidates, rows) and select_resident per row, frees its workspaces and waits for nothing', () => {
    const { d, launches } = fakeDevice();
    const args = selectArgs(d, { groups: 2 });
    const before = d.lifetimes.liveTensors;
    const out = selectResident(d, args);
    // 8 candidates a block: a page of 2 KV heads of 64 is one load for one warp (estimatePagesPerBlock).
    expect(launches).toEqual([`estimate_rows_cuboid_max_f16_hd64 [120, 3, 1] on ${STREAM.compute}`, `select_resident [3, 1, 1] on ${STREAM.compute}`]);
    // Five outputs stay; scores, flags and best scores were disposed.
    expect(d.lifetimes.liveTensors - before).toBe(5);
    expect(out.pageTable.shape).toEqual([3, 1, 40]);
    expect(out.pageCounts.shape).toEqual([3, 1]);
    expect(out.lastPageLens.shape).toEqual([3, 1]);
    expect(out.copies.shape).toEqual([3, 1 + 2 * 29 * 2]);
    expect(out.plan.shape).toEqual([3, 1 + 2 * 29 * 2]);
  });

  it('refuses shapes the kernels cannot read, with messages that name them', () => {
    const { d, launches } = fakeDevice();
    expect(() => selectResident(d, selectArgs(d, {}, { rows: [3, 4] }))).toThrow(/rows must be i32 \[B, 5\], got \[3, 4\]/);
    expect(() => selectResident(d, selectArgs(d, {}, { tables: [4, 2, 50] }))).toThrow(/tables must be i32 \[rows, 3, pages\]/);
    expect(() => selectResident(d, selectArgs(d, {}, { q: [2, 4, 64] }))).toThrow(/q must be \[3, 4, 64\], got \[2, 4, 64\]/);
    expect(() => selectResident(d, selectArgs(d, { groups: 3 }))).toThrow(/3 groups do not divide 4 heads/);
    expect(() => selectResident(d, selectArgs(d, { k: -1 }))).toThrow(/must be integers >= 0/);
    expect(() => selectResident(d, selectArgs(d, { k: MAX_RECALLS / 4 + 1, groups: 4 }))).toThrow(/at most 1024/);
    expect(launches).toEqual([]);
  });
});

describe('selectAttend on the CUDA backend', () => {
  const attendArgs = (
    d: CudaDevice,
    over: Partial<SelectAttendArgs> = {},
    shapes: { q?: number[]; tables?: number[]; rows?: number[] } = {},
  ): SelectAttendArgs => ({
    ...selectArgs(d, { groups: 4, k: 31, maxPages: 32 }, shapes),
    ...over,
  });

  it('launches estimate_rows over (candidates, rows) and select_attend per (group, row), frees its workspaces and waits for nothing', () => {
    const { d, launches } = fakeDevice();
    const args = attendArgs(d);
    const before = d.lifetimes.liveTensors;
    const out = selectAttend(d, args);
    expect(launches).toEqual([`estimate_rows_cuboid_max_f16_hd64 [120, 3, 1] on ${STREAM.compute}`, `select_attend [4, 3, 1] on ${STREAM.compute}`]);
    // Three outputs stay; the scores and the flags were disposed.
    expect(d.lifetimes.liveTensors - before).toBe(3);
    expect(out.pageTable.shape).toEqual([3, 4, 32]);
    expect(out.pageCounts.shape).toEqual([3, 4]);
    expect(out.lastPageLens.shape).toEqual([3, 4]);
  });

  it('refuses shapes the kernels cannot read, with messages that name them', () => {
    const { d, launches } = fakeDevice();
    expect(() => selectAttend(d, attendArgs(d, {}, { rows: [3, 4] }))).toThrow(/selectAttend: rows must be i32 \[B, 5\], got \[3, 4\]/);
    expect(() => selectAttend(d, attendArgs(d, {}, { tables: [4, 2, 50] }))).toThrow(/tables must be i32 \[rows, 3, pages\]/);
    expect(() => selectAttend(d, attendArgs(d, {}, { q: [2, 4, 64] }))).toThrow(/q must be \[3, 4, 64\], got \[2, 4, 64\]/);
    expect(() => selectAttend(d, attendArgs(d, { groups: 3 }))).toThrow(/3 groups do not divide 4 heads/);
    expect(() => selectAttend(d, attendArgs(d, { k: -1 }))).toThrow(/must be integers >= 0/);
    expect(launches).toEqual([]);
  });
});

describe('recallListed and scatterI32 on the CUDA backend', () => {
  const device = new CudaKvStorage('device', 8, g, pageBytes, 0x100000n, 0n);
  const host = new CudaKvStorage('host', 8, g, pageBytes, 0x900000n, 0x900000n);

  it('recallListed launches one copy block set per (listed recall, row) on the compute stream', () => {
    const { d, launches } = fakeDevice();
    const copies = d.empty([3, 1 + 2 * 29], 'i32', 'copies');
    recallListed(d, host, device, copies);
    expect(launches).toEqual([`recall_listed [29, 8, 3] on ${STREAM.compute}`]);
  });

  it('recallListed refuses pools the wrong way round and lists of even width', () => {
    const { d } = fakeDevice();
    expect(() => recallListed(d, device, device, d.empty([1, 3], 'i32', 'copies'))).toThrow(/from a host pool into a device pool, got device -> device/);
    expect(() => recallListed(d, host, device, d.empty([1, 4], 'i32', 'copies'))).toThrow(/copies must be \[B, 1 \+ 2n\], got \[1, 4\]/);
  });

  it('recallListed moves fp8 slots whole (their scale bytes with them): pageBytes / 4 words, and only between pools of one format', () => {
    const fp8: KvGeometry = { ...g, kvDtype: 'fp8' };
    const fp8PageBytes = 2 * 2 * 16 * 64 + 2 * 2 * 16;
    const fp8Device = new CudaKvStorage('device', 8, fp8, fp8PageBytes, 0x100000n, 0n);
    const fp8Host = new CudaKvStorage('host', 8, fp8, fp8PageBytes, 0x900000n, 0x900000n);
    const { d, launches } = fakeDevice();
    const params: Uint8Array[] = [];
    const addon = d.addon as unknown as { launch: (name: string, grid: number[], p: Uint8Array, stream: number) => void };
    const launch = addon.launch;
    addon.launch = (name, grid, p, stream) => (params.push(p.slice()), launch(name, grid, p, stream));
    const copies = d.empty([3, 1 + 2 * 29], 'i32', 'copies');
    recallListed(d, fp8Host, fp8Device, copies);
    expect(launches).toEqual([`recall_listed [29, 8, 3] on ${STREAM.compute}`]);
    const want = findRecallListed({})!.pack({
      hostPool: fp8Host.ptr,
      devicePool: fp8Device.ptr,
      copies: copies.ptr,
      batch: 3,
      maxCopies: 29,
      pageWords: fp8PageBytes / 4,
    });
    expect(params).toEqual([want]);
    const plainHost = new CudaKvStorage('host', 8, g, fp8PageBytes, 0x900000n, 0x900000n);
    expect(() => recallListed(d, plainHost, fp8Device, copies)).toThrow('recallListed: the pools have different page formats');
  });

  it('scatterI32 takes i32 [n, 2] updates', () => {
    const { d, launches } = fakeDevice();
    scatterI32(d, d.empty([4, 3, 50], 'i32', 'tables'), d.empty([300, 2], 'i32', 'updates'));
    expect(launches).toEqual([`scatter_i32 [2, 1, 1] on ${STREAM.compute}`]);
    expect(() => scatterI32(d, d.empty([4], 'i32', 't'), d.empty([3, 3], 'i32', 'u'))).toThrow(/updates must be \[n, 2\], got \[3, 3\]/);
    expect(() => scatterI32(d, d.empty([4], 'f32', 't'), d.empty([1, 2], 'i32', 'u'))).toThrow(/scatterI32 target: expected a i32 tensor, got f32/);
  });
});
