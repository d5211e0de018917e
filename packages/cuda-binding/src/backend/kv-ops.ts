import type { CopyTicket, DigestStorage, DigestVariant, KvGeometry, KvStorage, PoolLocation, Tensor } from '@arkvale/core';
import { ConfigError, invalidArgument, pageBytes as slotBytes } from '@arkvale/core';
import { ESTIMATE_MAX_HEADS, estimatePagesPerBlock } from '@arkvale/kernels-codegen/launch';
import { findEstimate, findKvAppend, findKvAppendFp8, findPageDigest, findPageDigestFp8 } from '../generated/index.js';
import { STREAM } from '../native.js';
import type { CudaDevice } from './device.js';
import { DTYPE_BYTES, type CudaTensor } from './tensor.js';

/**
 * A page pool: [slot][K|V][kvHead][token][dim] in the activation dtype, or for
 * `geometry.kvDtype === 'fp8'` core's fp8 slots (e4m3 codes in that order, then a
 * scale byte per [K|V][kvHead][token], padded to 16 bytes), which the *_fp8 kernel
 * families read and write. Device pools come from the caching allocator; host pools
 * are pinned, mapped host memory (`ptr` is its device address, so kernels and async
 * copies reach it directly). Copies and recalls move `pageBytes` whatever the format.
 */
export class CudaKvStorage implements KvStorage {
  constructor(
    readonly location: PoolLocation,
    readonly slots: number,
    readonly geometry: KvGeometry,
    readonly pageBytes: number,
    /** Device address of slot 0 (for a host pool: its mapped device address). */
    readonly ptr: bigint,
    /** The host address of a host pool (what hostFree takes); 0n for a device pool. */
    readonly hostPtr: bigint,
  ) {}
}

/** Digest rows [row][kvHead][2][dim] in the activation dtype (for fp8 pages too), in device memory. */
export class CudaDigestStorage implements DigestStorage {
  constructor(
    readonly rows: number,
    readonly geometry: KvGeometry,
    readonly data: CudaTensor,
  ) {}
}

export function asStorage(s: KvStorage): CudaKvStorage {
  if (!(s instanceof CudaKvStorage)) throw invalidArgument('KV storage does not belong to the CUDA backend');
  return s;
}

export function asDigests(s: DigestStorage): CudaDigestStorage {
  if (!(s instanceof CudaDigestStorage)) throw invalidArgument('digest storage does not belong to the CUDA backend');
  return s;
}

/** Whether a pool of `g` holds fp8 pages (the *_fp8 kernel families). */
export const isFp8 = (g: KvGeometry): boolean => g.kvDtype === 'fp8';

/**
 * Why this backend cannot store pages of `g`'s `kvDtype`, or null when it can: pages
 * in its own dtype, or fp8 pages at head dims its fp8 kernels lay out (a power of two
 * from 32 to 256: kv_append_fp8 reduces a head's row over one aligned segment of a
 * warp).
 */
export function kvDtypeRefusal(g: KvGeometry): string | null {
  if (g.kvDtype === undefined) return null;
  if (g.kvDtype !== 'fp8') return `--kv-dtype ${String(g.kvDtype)} is not supported on the CUDA backend: use --kv-dtype auto or fp8`;
  const d = g.headDim;
  if (d < 32 || d > 256 || (d & (d - 1)) !== 0) {
    return `--kv-dtype fp8 on the CUDA backend needs a head dim that is a power of two from 32 to 256, got ${d}: use --kv-dtype auto`;
  }
  return null;
}

export function createKvStorage(d: CudaDevice, location: PoolLocation, slots: number, g: KvGeometry): CudaKvStorage {
  const refusal = kvDtypeRefusal(g);
  if (refusal) throw new ConfigError(refusal);
  const element = DTYPE_BYTES[d.dtype];
  if (g.bytesPerElement !== element) {
    throw invalidArgument(`KV geometry says ${g.bytesPerElement}-byte elements, but this CUDA backend stores ${d.dtype} (${element} bytes)`);
  }
  // core's slot size: 2 * kvHeads * pageSize * headDim elements, or for fp8 the codes and scale bytes padded to 16 bytes.
  const pageBytes = slotBytes(g);
  const bytes = Math.max(16, slots * pageBytes);
  const what = `${location} KV pool (${slots} ${isFp8(g) ? 'fp8 ' : ''}pages of ${g.pageSize} tokens)`;
  if (location === 'device') return new CudaKvStorage(location, slots, g, pageBytes, d.addon.alloc(bytes, what), 0n);
  const host = d.addon.hostAlloc(bytes, what);
  return new CudaKvStorage(location, slots, g, pageBytes, host.device, host.host);
}

export function createDigestStorage(d: CudaDevice, rows: number, g: KvGeometry): CudaDigestStorage {
  if (g.numHeads > ESTIMATE_MAX_HEADS)
    throw invalidArgument(`digests: ${g.numHeads} query heads; the CUDA estimate kernels sum at most ${ESTIMATE_MAX_HEADS} per page`);
  // In the KV dtype: page_digest rounds each volume outward, and estimates read half the bytes of f32.
  const data = d.lifetimes.untracked(() => d.empty([rows, g.numKvHeads, 2, g.headDim], d.dtype, `digest rows (${rows})`));
  return new CudaDigestStorage(rows, g, data);
}

/** Returns a pool's memory (the backend's `disposeStorage`). */
export function freeKvStorage(d: CudaDevice, s: CudaKvStorage): void {
  if (s.location === 'device') d.addon.free(s.ptr);
  else d.addon.hostFree(s.hostPtr);
}

export function appendKv(d: CudaDevice, st: KvStorage, kt: Tensor, vt: Tensor, slotsT: Tensor, offsetsT: Tensor): void {
  const s = asStorage(st);
  const g = s.geometry;
  const k = d.expect(d.tensor(kt, 'appendKv k'), 'appendKv k', [d.dtype], 3);
  const v = d.expect(d.tensor(vt, 'appendKv v'), 'appendKv v', [d.dtype], 3);
  const slots = d.expect(d.tensor(slotsT, 'appendKv slots'), 'appendKv slots', ['i32'], 1);
  const offsets = d.expect(d.tensor(offsetsT, 'appendKv offsets'), 'appendKv offsets', ['i32'], 1);
  const t = slots.shape[0];
  if (k.elements !== t * g.numKvHeads * g.headDim || v.elements !== k.elements || offsets.shape[0] !== t) {
    throw invalidArgument(`appendKv: k/v must be [${t}, ${g.numKvHeads}, ${g.headDim}], got [${k.shape}] and [${v.shape}]`);
  }
  const spec = { dtype: d.dtype, headDim: g.headDim, pageSize: g.pageSize };
  // fp8 pages: the same arguments; the kernel quantizes each token's K and V rows per KV head (core's appendKv, byte for byte).
  const kernel = isFp8(g) ? d.kernels.get('kv_append_fp8', findKvAppendFp8, spec) : d.kernels.get('kv_append', findKvAppend, spec);
  d.launch(kernel, {
    k: k.ptr,
    v: v.ptr,
    slots: slots.ptr,
    offsets: offsets.ptr,
    pool: s.ptr,
    numTokens: t,
    numKvHeads: g.numKvHeads,
  });
}

export function digestPages(d: CudaDevice, st: KvStorage, slotsT: Tensor, dt: DigestStorage, rowsT: Tensor, variant: DigestVariant): void {
  const s = asStorage(st);
  const digests = asDigests(dt);
  const slots = d.expect(d.tensor(slotsT, 'digestPages slots'), 'digestPages slots', ['i32'], 1);
  const rows = d.expect(d.tensor(rowsT, 'digestPages rows'), 'digestPages rows', ['i32'], 1);
  const g = s.geometry;
  const spec = { variant, dtype: d.dtype, headDim: g.headDim, pageSize: g.pageSize };
  // Digests stay in the activation dtype; of fp8 pages they are taken from the dequantized keys.
  const kernel = isFp8(g) ? d.kernels.get('page_digest_fp8', findPageDigestFp8, spec) : d.kernels.get('page_digest', findPageDigest, spec);
  d.launch(kernel, {
    pool: s.ptr,
    slots: slots.ptr,
    rows: rows.ptr,
    digests: digests.data.ptr,
    numPages: slots.shape[0],
    numKvHeads: g.numKvHeads,
  });
}

export function estimate(d: CudaDevice, qt: Tensor, dt: DigestStorage, rowsT: Tensor, groups: number, variant: DigestVariant): CudaTensor {
  const digests = asDigests(dt);
  const g = digests.geometry;
  const q = d.expect(d.tensor(qt, 'estimate q'), 'estimate q', [d.dtype]);
  const rows = d.expect(d.tensor(rowsT, 'estimate rows'), 'estimate rows', ['i32'], 1);
  if (q.elements !== g.numHeads * g.headDim) throw invalidArgument(`estimate: q must be [${g.numHeads}, ${g.headDim}], got [${q.shape}]`);
  if (g.numHeads % groups !== 0) throw invalidArgument(`estimate: ${groups} groups do not divide ${g.numHeads} heads`);
  const pages = rows.shape[0];
  const out = d.empty([groups, pages], 'f32', 'estimate output');
  d.launch(d.kernels.get('estimate', findEstimate, { variant, dtype: d.dtype, headDim: g.headDim }), {
    q: q.ptr,
    digests: digests.data.ptr,
    rows: rows.ptr,
    out: out.ptr,
    numPages: pages,
    numHeads: g.numHeads,
    numKvHeads: g.numKvHeads,
    groups,
    pagesPerBlock: estimatePagesPerBlock(g.numHeads, g.numKvHeads, g.headDim),
  });
  return out;
}

/**
 * Orders page copies between pools. Backups (device -> host) run on their own
 * stream after everything the compute stream has issued (the pages were just
 * written there, and an earlier recall may still read a host slot being reused);
 * their ticket is the copy stream's latest event. Recalls and copies within a pool
 * run on the compute stream, in order with the work around them.
 */
export class PageCopies {
  private backupEvent = -1;
  private tickets = 0;
  /** The newest backup's ticket, and the newest the compute stream waits for. */
  private lastBackup = 0;
  private awaited = 0;

  constructor(private readonly d: CudaDevice) {}

  copy(srcT: KvStorage, srcSlots: readonly number[], dstT: KvStorage, dstSlots: readonly number[]): CopyTicket {
    const src = asStorage(srcT);
    const dst = asStorage(dstT);
    if (srcSlots.length !== dstSlots.length) throw invalidArgument('copyPages: slot lists differ in length');
    if (src.pageBytes !== dst.pageBytes || isFp8(src.geometry) !== isFp8(dst.geometry))
      throw invalidArgument('copyPages: the pools have different page formats');
    const check = (s: CudaKvStorage, slots: readonly number[]) => {
      for (const slot of slots)
        if (!Number.isInteger(slot) || slot < 0 || slot >= s.slots) throw invalidArgument(`copyPages: ${s.location} slot ${slot} outside 0..${s.slots - 1}`);
    };
    check(src, srcSlots);
    check(dst, dstSlots);
    const id = ++this.tickets;
    if (srcSlots.length === 0) return { id };
    const a = this.d.addon;
    const what = `copyPages (${src.location} -> ${dst.location}, ${srcSlots.length} pages)`;
    const backup = src.location === 'device' && dst.location === 'host';
    let stream: number = STREAM.compute;
    if (backup) {
      const ready = a.recordEvent(STREAM.compute);
      a.waitEvent(STREAM.deviceToHost, ready);
      a.releaseEvent(ready);
      stream = STREAM.deviceToHost;
    }
    a.copyPages(dst.ptr, Int32Array.from(dstSlots), src.ptr, Int32Array.from(srcSlots), src.pageBytes, stream, what);
    if (backup) {
      const done = a.recordEvent(STREAM.deviceToHost);
      if (this.backupEvent >= 0) a.releaseEvent(this.backupEvent);
      this.backupEvent = done;
      this.lastBackup = id;
    }
    return { id };
  }

  /**
   * Orders later compute work after the copy (a device-side wait, no host sync).
   * Copies on the compute stream are ordered already; for a backup, waiting on the
   * newest backup event covers every earlier one.
   */
  await(ticket: CopyTicket): void {
    if (ticket.id <= this.awaited || this.backupEvent < 0) return;
    this.d.addon.waitEvent(STREAM.compute, this.backupEvent);
    this.awaited = this.lastBackup;
  }
}
