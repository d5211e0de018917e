import { describe, expect, it } from 'vitest';
import type { DType } from '@arkvale/core';
import { floatToHalfBits } from '@arkvale/core';
import { STREAM, type CudaAddon } from '../native.js';
import { PendingReads } from './pending-reads.js';
import { CudaTensor, DeviceBuffer } from './tensor.js';

/**
 * A device whose copies and events complete only when it runs (`run()`, or a
 * synchronize): device memory by address, the pinned ring as an ArrayBuffer.
 */
class FakeGpu {
  readonly memory = new Map<bigint, Uint8Array>();
  private ring = new ArrayBuffer(0);
  private readonly queued: (() => void)[] = [];
  private readonly completed = new Set<number>();
  private events = 0;
  readonly released: number[] = [];
  syncs = 0;
  downloads = 0;
  private next = 0x10000n;

  readonly addon = {
    hostAlloc: (bytes: number) => {
      this.ring = new ArrayBuffer(bytes);
      return { host: 0x7000_0000n, device: 0x7000_0000n };
    },
    hostView: () => this.ring,
    copy: (dst: bigint, src: bigint, bytes: number, stream: number) => {
      expect(stream).toBe(STREAM.compute);
      // The bytes as they are now in stream order (nothing else runs on this device).
      const data = this.memory.get(src)!.slice(0, bytes);
      this.queued.push(() => new Uint8Array(this.ring, Number(dst - 0x7000_0000n), bytes).set(data));
    },
    recordEvent: () => {
      const e = ++this.events;
      this.queued.push(() => this.completed.add(e));
      return e;
    },
    eventDone: (e: number) => this.completed.has(e),
    // The device runs up to the event, and no further.
    synchronizeEvent: (e: number) => {
      this.syncs++;
      while (!this.completed.has(e) && this.queued.length > 0) this.queued.shift()!();
    },
    releaseEvent: (e: number) => this.released.push(e),
    synchronize: () => {
      this.syncs++;
      this.run();
    },
    download: (src: bigint, dst: Uint8Array) => {
      this.downloads++;
      this.run();
      dst.set(this.memory.get(src)!.subarray(0, dst.byteLength));
    },
  } as unknown as CudaAddon;

  get recorded(): number {
    return this.events;
  }

  /** The device catches up with everything queued. */
  run(): void {
    for (const op of this.queued.splice(0)) op();
  }

  tensor(values: number[], dtype: DType = 'i32'): CudaTensor {
    const bytes =
      dtype === 'i32'
        ? new Uint8Array(Int32Array.from(values).buffer)
        : dtype === 'f32'
          ? new Uint8Array(Float32Array.from(values).buffer)
          : new Uint8Array(Uint16Array.from(values, floatToHalfBits).buffer);
    const ptr = this.next;
    this.next += 0x10000n;
    this.memory.set(ptr, bytes);
    return new CudaTensor(new DeviceBuffer(ptr, bytes.byteLength, () => {}), 0, [values.length], dtype);
  }

  /** The tensor's i32 values on the device now. */
  read(t: CudaTensor): Int32Array {
    return new Int32Array(this.memory.get(t.ptr)!.slice().buffer, 0, t.elements);
  }

  /** A later kernel overwrites the tensor (the read must still see the old values). */
  overwrite(t: CudaTensor, values: number[]): void {
    this.queued.push(() => this.memory.get(t.ptr)!.set(new Uint8Array(Int32Array.from(values).buffer)));
  }
}

describe('readLater: device -> host copies into a pinned ring, taken without waiting once done', () => {
  it('a step of 30 reads found done by the next step costs no synchronisation', () => {
    const gpu = new FakeGpu();
    const reads = new PendingReads(gpu.addon);
    const tensors = Array.from({ length: 30 }, (_, i) => gpu.tensor(Array.from({ length: 59 }, (_, j) => i * 100 + j)));
    const pending = tensors.map((t) => reads.read(t));
    // The step's token readback waited for the device anyway.
    gpu.run();
    pending.forEach((p, i) => expect(Array.from(p.get())).toEqual(Array.from({ length: 59 }, (_, j) => i * 100 + j)));
    expect(gpu.syncs).toBe(0);
    expect(gpu.released.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(reads.inFlight).toBe(0);
  });

  it('get() before the copy is done waits once (counted), and returns the values the tensor had when the read began', () => {
    const gpu = new FakeGpu();
    const reads = new PendingReads(gpu.addon);
    const t = gpu.tensor([1, 2, 3]);
    const p = reads.read(t);
    gpu.overwrite(t, [7, 8, 9]);
    expect(Array.from(p.get())).toEqual([1, 2, 3]);
    expect(gpu.syncs).toBe(1);
    // Taken once: later calls neither wait nor change, and each returns its own copy.
    const again = p.get();
    again[0] = 42;
    expect(Array.from(p.get())).toEqual([1, 2, 3]);
    expect(gpu.syncs).toBe(1);
  });

  it('a read waits for its own copy, not for work issued after it, and says whether it would wait', () => {
    const gpu = new FakeGpu();
    const reads = new PendingReads(gpu.addon);
    const t = gpu.tensor([4, 5]);
    const p = reads.read(t);
    expect(p.ready?.()).toBe(false);
    // The next step, issued before the read is taken: it is still queued once the read returns.
    gpu.overwrite(t, [0, 0]);
    expect(Array.from(p.get())).toEqual([4, 5]);
    expect(gpu.syncs).toBe(1);
    expect(p.ready?.()).toBe(true);
    expect(Array.from(gpu.read(t))).toEqual([4, 5]);
    gpu.run();
    expect(Array.from(gpu.read(t))).toEqual([0, 0]);
  });

  it('reusing ring space first saves the reads still in it, so none is lost and every event is released', () => {
    const gpu = new FakeGpu();
    // 1 KiB: room for four reads of 40 i32 (at 256-byte steps) before the ring wraps.
    const reads = new PendingReads(gpu.addon, 1024);
    const values = (i: number) => Array.from({ length: 40 }, (_, j) => i * 1000 + j);
    const pending = Array.from({ length: 6 }, (_, i) => {
      const p = reads.read(gpu.tensor(values(i)));
      if (i === 2) gpu.run(); // the first three are done before the ring wraps
      return p;
    });
    // Reads 4 and 5 wrapped onto reads 0 and 1 and found them done: no wait.
    expect(gpu.syncs).toBe(0);
    gpu.run();
    pending.forEach((p, i) => expect(Array.from(p.get())).toEqual(values(i)));
    expect(gpu.syncs).toBe(0);
    expect(gpu.released.length).toBe(gpu.recorded);
  });

  it('wrapping onto a read still in flight waits for it rather than overwrite it', () => {
    const gpu = new FakeGpu();
    const reads = new PendingReads(gpu.addon, 512);
    const first = reads.read(gpu.tensor([5, 6, 7]));
    const second = reads.read(gpu.tensor(Array.from({ length: 100 }, (_, j) => j)));
    expect(gpu.syncs).toBe(1);
    gpu.run();
    expect(Array.from(first.get())).toEqual([5, 6, 7]);
    expect(Array.from(second.get())).toEqual(Array.from({ length: 100 }, (_, j) => j));
    expect(gpu.syncs).toBe(1);
  });

  it('decodes f16 and f32 tensors, and reads larger than the ring take the ordinary (waiting) path', () => {
    const gpu = new FakeGpu();
    const reads = new PendingReads(gpu.addon, 256);
    const half = reads.read(gpu.tensor([0.5, -2, 1.25], 'f16'));
    const single = reads.read(gpu.tensor([0.1, 3], 'f32'));
    const big = reads.read(gpu.tensor(Array.from({ length: 100 }, (_, j) => 1 - j)));
    expect(gpu.downloads).toBe(1);
    gpu.run();
    expect(half.get()).toEqual(Float32Array.from([0.5, -2, 1.25]));
    expect(single.get()).toEqual(Float32Array.from([0.1, 3]));
    expect(Array.from(big.get())).toEqual(Array.from({ length: 100 }, (_, j) => 1 - j));
  });
});
