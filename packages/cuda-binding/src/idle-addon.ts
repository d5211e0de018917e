import type { CudaAddon } from './native.js';

/**
 * An addon whose calls do nothing: launches, products, allocations, copies and events
 * return at once, and reads return zeros. The CUDA backend over it runs its whole host
 * side (the forward pass's JavaScript, the step graphs' records and replays, the page
 * manager) with no GPU: `tools/bench/host-overhead.mjs` times it, and tests check that
 * the host's bookkeeping is the same whichever way the steps are issued. Addresses are
 * made up; pinned blocks of up to 64 MiB are real host memory, so that `hostView` works.
 * `counts` says how many times each function was called.
 */
export function idleCudaAddon(): { addon: CudaAddon; counts: Map<string, number> } {
  let next = 1n << 32n;
  let events = 0;
  let dependent = false;
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
    releaseCached() {},
    hostAlloc(bytes: number) {
      const host = addr(bytes);
      // Real memory only for small blocks (read-back rings, step inputs): the host page pool is never viewed.
      if (bytes <= 64 << 20) pinned.set(host, new ArrayBuffer(bytes));
      return { host, device: host };
    },
    hostFree: (host: bigint) => pinned.delete(host),
    hostView(host: bigint, bytes: number) {
      for (const [base, buf] of pinned)
        if (host >= base && host + BigInt(bytes) <= base + BigInt(buf.byteLength)) return buf.slice(Number(host - base), Number(host - base) + bytes);
      throw new Error('hostView outside a block');
    },
    upload: () => count('upload'),
    download: (_src: bigint, dst: ArrayBufferView) => (count('download'), new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).fill(0)),
    copy: () => count('copy'),
    copy2d: () => count('copy2d'),
    copyPages: () => count('copyPages'),
    memset: () => count('memset'),
    recordEvent: () => (count('recordEvent'), ++events),
    waitEvent: () => count('waitEvent'),
    eventDone: () => true,
    synchronizeEvent: () => count('synchronize'),
    releaseEvent() {},
    synchronize: () => count('synchronize'),
    elapsedMs: () => 0,
    profilerRange() {},
    syncCount: () => (counts.get('download') ?? 0) + (counts.get('synchronize') ?? 0),
    kernels: () => [],
    launch: () => count('launch'),
    // As on an sm_90 GPU: the switch holds what was last set.
    dependentLaunch: (on?: boolean) => (dependent = on ?? dependent),
    blasStatus: () => ({ loaded: true, version: 130000 }),
    gemm: () => count('gemm'),
    gemmTuning: () => [],
    beginCapture() {},
    endCapture: () => 0,
    launchGraph: () => count('launchGraph'),
    destroyGraph() {},
    buildInfo: () => ({ archs: [] }),
  };
  return { addon: addon as unknown as CudaAddon, counts };
}
