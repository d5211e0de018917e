import type { CudaAddon } from './native.js';

export interface IdleAddonOptions {
  /**
   * A device that runs nothing until the host waits for it, as a GPU far behind the
   * host would: an event is done only once a wait (an event's, a stream's, a download,
   * a freeing of pinned memory) has reached it. Without it every call's work is done
   * when the call returns.
   */
  readonly lagging?: boolean;
}

/** How far the device has got, counted in the work the host gave it (launches, products, copies, events), in order. */
export interface IdleDevice {
  /** Work issued so far. */
  readonly issued: number;
  /** Of it, how much is done: all of it unless lagging, else up to the furthest point a wait of the host reached. */
  readonly done: number;
  /** How much was done when the host issued work number `n` (1 is the first). */
  doneWhenIssued(n: number): number;
}

/**
 * An addon whose calls do nothing: launches, products, allocations, copies and events
 * return at once, and reads return zeros. The CUDA backend over it runs its whole host
 * side (the forward pass's JavaScript, the step graphs' records and replays, the page
 * manager) with no GPU: `tools/bench/host-overhead.mjs` times it, and tests check that
 * the host's bookkeeping is the same whichever way the steps are issued. Addresses are
 * made up; pinned blocks of up to 64 MiB are real host memory, so that `hostView` works.
 * `counts` says how many times each function was called; `device`, how far the device
 * had got when each piece of work was issued (with `lagging`: whether a step was issued
 * while the one before still ran).
 */
export function idleCudaAddon(options: IdleAddonOptions = {}): { addon: CudaAddon; counts: Map<string, number>; device: IdleDevice } {
  let next = 1n << 32n;
  let dependent = false;
  // The device's work in issue order (one stream stands for all: a wait reaches everything issued before it).
  let issued = 0;
  let done = 0;
  const doneAtIssue: number[] = [];
  const queue = () => {
    doneAtIssue.push(done);
    issued++;
    if (!options.lagging) done = issued;
  };
  const waitFor = (point: number) => {
    done = Math.max(done, point);
  };
  let lastEvent = 0;
  const events = new Map<number, number>();
  const pinned = new Map<bigint, ArrayBuffer>();
  const counts = new Map<string, number>();
  const count = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);
  const addr = (bytes: number) => {
    const p = next;
    next += BigInt(Math.ceil(bytes / 256) * 256 + 256);
    return p;
  };
  const addon = {
    probe: () => ({
      available: true,
      devices: [{ index: 0, name: 'no device (idle addon)', multiprocessors: 132, computeCapability: '9.0', totalBytes: 141e9 }],
    }),
    init() {},
    memInfo: () => ({ freeBytes: 140e9, totalBytes: 141e9 }),
    alloc: (bytes: number) => (count('alloc'), addr(bytes)),
    free: () => count('free'),
    allocatorStats: () => ({ reservedBytes: 0, allocatedBytes: 0, slabs: 0, mallocs: 0 }),
    releaseCached: () => waitFor(issued),
    hostAlloc(bytes: number) {
      const host = addr(bytes);
      // Real memory only for small blocks (read-back rings, step inputs): the host page pool is never viewed.
      if (bytes <= 64 << 20) pinned.set(host, new ArrayBuffer(bytes));
      return { host, device: host };
    },
    hostFree: (host: bigint) => (waitFor(issued), pinned.delete(host)),
    hostView(host: bigint, bytes: number) {
      for (const [base, buf] of pinned)
        if (host >= base && host + BigInt(bytes) <= base + BigInt(buf.byteLength)) return buf.slice(Number(host - base), Number(host - base) + bytes);
      throw new Error('hostView outside a block');
    },
    upload: () => (queue(), count('upload')),
    download: (_src: bigint, dst: ArrayBufferView) => (
      queue(), waitFor(issued), count('download'), new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).fill(0)
    ),
    copy: () => (queue(), count('copy')),
    copy2d: () => (queue(), count('copy2d')),
    copyPages: () => (queue(), count('copyPages')),
    memset: () => (queue(), count('memset')),
    recordEvent: () => (queue(), count('recordEvent'), events.set(++lastEvent, issued), lastEvent),
    waitEvent: () => (queue(), count('waitEvent')),
    eventDone: (event: number) => eventPoint(event) <= done,
    synchronizeEvent: (event: number) => (waitFor(eventPoint(event)), count('synchronize')),
    releaseEvent: (event: number) => events.delete(event),
    synchronize: () => (waitFor(issued), count('synchronize')),
    elapsedMs: () => 0,
    profilerRange() {},
    syncCount: () => (counts.get('download') ?? 0) + (counts.get('synchronize') ?? 0),
    kernels: () => [],
    launch: () => (queue(), count('launch')),
    // As on an sm_90 GPU: the switch holds what was last set.
    dependentLaunch: (on?: boolean) => (dependent = on ?? dependent),
    blasStatus: () => ({ loaded: true, version: 130000 }),
    gemm: () => (queue(), count('gemm')),
    gemmTuning: () => [],
    beginCapture() {},
    endCapture: () => 0,
    launchGraph: () => (queue(), count('launchGraph')),
    destroyGraph() {},
    buildInfo: () => ({ archs: [] }),
  };
  function eventPoint(event: number): number {
    const point = events.get(event);
    if (point === undefined) throw new Error(`idle addon: event ${event} was never recorded or is released`);
    return point;
  }
  const device: IdleDevice = {
    get issued() {
      return issued;
    },
    get done() {
      return done;
    },
    doneWhenIssued: (n: number) => {
      if (!(Number.isInteger(n) && n >= 1 && n <= issued)) throw new RangeError(`idle addon: no work number ${n} (1 to ${issued} issued)`);
      return doneAtIssue[n - 1];
    },
  };
  return { addon: addon as unknown as CudaAddon, counts, device };
}
