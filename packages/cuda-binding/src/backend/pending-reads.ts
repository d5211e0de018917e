import type { PendingRead } from '@arkvale/core';
import { decodeFloats, internalError } from '@arkvale/core';
import { STREAM, type CudaAddon, type PinnedBlock } from '../native.js';
import type { StepGraphs } from './step-graphs.js';
import type { CudaTensor } from './tensor.js';

/** Pinned bytes for reads in flight: a decode step's ~30 selection plans take a few tens of KiB. */
export const READ_RING_BYTES = 4 << 20;

/** Copies start on 256-byte boundaries (cudaMemcpyAsync's fast path; any alignment works). */
const ALIGN = 256;

interface Entry {
  readonly offset: number;
  readonly bytes: number;
  readonly tensor: { readonly dtype: CudaTensor['dtype']; readonly elements: number };
  /** The copy's completion; -1 once released. */
  event: number;
  /** The bytes, once taken out of the ring (by get() or before the region is reused). */
  data?: Uint8Array;
}

/**
 * Backend.readLater: device -> host copies queued on the compute stream into a ring
 * of pinned memory, each followed by an event. `get` copies the bytes out of the ring,
 * waiting (a counted synchronisation) only when the event has not completed. Regions
 * are handed out in ring order; before one is reused, every read still in it is taken
 * out of the ring (waiting only if still in flight), so no result is lost and no event
 * leaks. The ring is allocated on the first read and lives with the backend.
 */
export class PendingReads {
  private ring?: PinnedBlock;
  private view?: ArrayBuffer;
  /** Reads whose bytes are still in the ring, oldest first. */
  private readonly queue: Entry[] = [];
  private head = 0;

  constructor(
    private readonly addon: CudaAddon,
    readonly ringBytes = READ_RING_BYTES,
    /** A read during a graphed step is issued after the step (its tensor is final then: a graph's buffers are not reused within a step). */
    private readonly graphs?: StepGraphs,
  ) {}

  read(t: CudaTensor): PendingRead {
    if (!this.graphs?.inStep) return this.issue(t);
    let read: PendingRead | null = null;
    const { ptr, bytes, shape, dtype, elements } = t;
    // Held until the copy is queued: the rest of the step must not reuse the buffer.
    t.buffer.retain();
    this.graphs.afterStep(() => {
      read = this.issue({ ptr, bytes, shape, dtype, elements });
      t.buffer.drop();
    });
    return {
      get: () => {
        if (!read) throw internalError('readLater: get() before the end of the step that queued the read');
        return read.get();
      },
      ready: () => read !== null && read.ready?.() !== false,
    };
  }

  private issue(t: Pick<CudaTensor, 'ptr' | 'bytes' | 'shape' | 'dtype' | 'elements'>): PendingRead {
    const tensor = { dtype: t.dtype, elements: t.elements };
    if (t.bytes === 0) return { get: () => decode(new Uint8Array(0), tensor) };
    if (t.bytes > this.ringBytes) {
      // Larger than the whole ring: an ordinary read (it waits, and says so in syncCount).
      const data = new Uint8Array(t.bytes);
      this.addon.download(t.ptr, data, STREAM.compute, `readLater of a [${t.shape.join(', ')}] ${t.dtype} tensor`);
      return { get: () => decode(data, tensor) };
    }
    const offset = this.claim(t.bytes);
    const ring = this.pinned();
    this.addon.copy(ring.host + BigInt(offset), t.ptr, t.bytes, STREAM.compute, `readLater of a [${t.shape.join(', ')}] ${t.dtype} tensor`);
    const entry: Entry = { offset, bytes: t.bytes, tensor, event: this.addon.recordEvent(STREAM.compute) };
    this.queue.push(entry);
    return { get: () => decode(this.take(entry), tensor), ready: () => entry.data !== undefined || this.addon.eventDone(entry.event) };
  }

  /** Reads still in the ring (tests). */
  get inFlight(): number {
    return this.queue.length;
  }

  private pinned(): PinnedBlock {
    if (!this.ring) {
      this.ring = this.addon.hostAlloc(this.ringBytes, 'readLater ring');
      this.view = this.addon.hostView(this.ring.host, this.ringBytes);
    }
    return this.ring;
  }

  /**
   * Where the next read of `bytes` goes: after the newest, or at 0 when it does not fit
   * before the end. Reads still in that region are taken out first; they were claimed
   * a whole lap of the ring ago, so their copies are long done and taking them waits
   * for nothing.
   */
  private claim(bytes: number): number {
    if (this.queue.length === 0) this.head = 0;
    const start = this.head + bytes > this.ringBytes ? 0 : this.head;
    const end = start + bytes;
    for (const e of this.queue.filter((x) => x.offset < end && x.offset + x.bytes > start)) this.take(e);
    this.head = Math.ceil(end / ALIGN) * ALIGN;
    return start;
  }

  /** The entry's bytes, copied out of the ring on first use (waiting if the copy is still running). */
  private take(entry: Entry): Uint8Array {
    if (entry.data) return entry.data;
    // Waits for this copy alone: work issued after it (the next decode step) runs on.
    if (!this.addon.eventDone(entry.event)) this.addon.synchronizeEvent(entry.event);
    entry.data = new Uint8Array(this.view!, entry.offset, entry.bytes).slice();
    this.addon.releaseEvent(entry.event);
    entry.event = -1;
    const at = this.queue.indexOf(entry);
    if (at >= 0) this.queue.splice(at, 1);
    return entry.data;
  }
}

/** A fresh typed array of the tensor's values (16-bit floats widened, as Backend.read does). */
function decode(bytes: Uint8Array, t: Entry['tensor']): Float32Array | Int32Array {
  const copy = bytes.slice();
  if (t.dtype === 'i32') return new Int32Array(copy.buffer, 0, t.elements);
  if (t.dtype === 'f32') return new Float32Array(copy.buffer, 0, t.elements);
  return decodeFloats(copy, t.dtype);
}
