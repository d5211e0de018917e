import type { CacheOptions, KvGeometry } from '../config.js';
import { PoolExhaustedError } from '../errors.js';
import { type DecodeStep, KvCache } from '../manager/kv-cache.js';
import { dequantizeHead, quantizeHead } from '../kv-fp8.js';
import { type RefPageStorage, readKvRow } from '../reference/kv.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { randomArray, rng } from './random.js';

/** Rounds the `d` values at `at` in place to what an fp8 page stores of them (quantized, then dequantized). */
export function fp8Row(data: Float32Array, at: number, d: number): void {
  const codes = new Uint8Array(d);
  dequantizeHead(codes, 0, d, quantizeHead(data, at, d, codes, 0), data, at);
}

/**
 * Drives a KvCache on the reference backend with random q/k/v and keeps a shadow of
 * every key and value written, so tests can check that what the pools hold is
 * exactly what was written, wherever the pages moved.
 */
export class CacheHarness {
  readonly backend: ReferenceBackend;
  readonly cache: KvCache;
  readonly next: () => number;
  /** shadow.get(seq)[layer][position] = [k..., v...] per KV head (numKvHeads * 2 * headDim), as the pages hold them (fp8: dequantized). */
  readonly shadow = new Map<number, Float32Array[][]>();
  readonly scale: number;

  constructor(
    readonly geometry: KvGeometry,
    options: CacheOptions,
    seed = 1,
    /** Round every random K and V row to what an fp8 page holds of it before it is written (see `fp8Row`). */
    readonly fp8Inputs = false,
    backend = new ReferenceBackend(),
  ) {
    this.backend = backend;
    this.cache = new KvCache({ geometry, options, backend: this.backend });
    this.next = rng(seed);
    this.scale = 1 / Math.sqrt(geometry.headDim);
  }

  private rand(shape: number[]) {
    return this.backend.fromArray(
      randomArray(
        this.next,
        shape.reduce((a, b) => a * b, 1),
      ),
      shape,
    );
  }

  /** Random K or V rows [rows, numKvHeads, headDim], rounded as fp8 pages hold them when `fp8Inputs`. */
  private randKv(shape: number[]) {
    const t = this.rand(shape);
    if (!this.fp8Inputs) return t;
    const data = this.backend.readSync(t) as Float32Array;
    for (let at = 0; at < data.length; at += this.geometry.headDim) fp8Row(data, at, this.geometry.headDim);
    return this.backend.fromArray(data, shape);
  }

  /** Admits a random prompt and prefills every layer; frees the sequence again if a pool runs out. */
  admit(length: number): number {
    const g = this.geometry;
    const id = this.cache.admit(length);
    const layers: Float32Array[][] = [];
    try {
      for (let l = 0; l < g.numLayers; l++) {
        const q = this.rand([length, g.numHeads, g.headDim]);
        const k = this.randKv([length, g.numKvHeads, g.headDim]);
        const v = this.randKv([length, g.numKvHeads, g.headDim]);
        this.cache.prefillLayer(id, l, q, k, v, this.scale);
        layers.push(this.record(k, v, length));
      }
    } catch (e) {
      this.cache.free(id);
      throw e;
    }
    this.shadow.set(id, layers);
    return id;
  }

  /**
   * One decode step of `ids` with random q/k/v; returns each layer's attention output.
   * `watch` sees the step once begun and again after its last layer.
   */
  step(ids: number[], watch?: { begun?(step: DecodeStep): void; ended?(step: DecodeStep): void }): Float32Array[] {
    const g = this.geometry;
    const step = this.cache.beginStep(ids);
    watch?.begun?.(step);
    const outs: Float32Array[] = [];
    for (let l = 0; l < g.numLayers; l++) {
      const q = this.rand([ids.length, g.numHeads, g.headDim]);
      const k = this.randKv([ids.length, g.numKvHeads, g.headDim]);
      const v = this.randKv([ids.length, g.numKvHeads, g.headDim]);
      outs.push(this.backend.readSync(this.cache.decodeLayer(step, l, q, k, v, this.scale)) as Float32Array);
      const rows = this.record(k, v, ids.length);
      ids.forEach((id, r) => this.shadow.get(id)![l].push(rows[r]));
    }
    watch?.ended?.(step);
    return outs;
  }

  fork(id: number): number {
    const child = this.cache.fork(id);
    this.shadow.set(
      child,
      this.shadow.get(id)!.map((l) => [...l]),
    );
    return child;
  }

  free(id: number): void {
    this.cache.free(id);
    this.shadow.delete(id);
  }

  private record(k: unknown, v: unknown, rows: number): Float32Array[] {
    const g = this.geometry;
    const kd = this.backend.readSync(k as never) as Float32Array;
    const vd = this.backend.readSync(v as never) as Float32Array;
    const per = g.numKvHeads * g.headDim;
    return Array.from({ length: rows }, (_, t) => {
      const row = new Float32Array(2 * per);
      row.set(kd.subarray(t * per, (t + 1) * per), 0);
      row.set(vd.subarray(t * per, (t + 1) * per), per);
      // What an fp8 page holds of the row: each head's K and V rounded on its own.
      if (g.kvDtype === 'fp8') for (let at = 0; at < 2 * per; at += g.headDim) fp8Row(row, at, g.headDim);
      return row;
    });
  }

  /** Throws unless every resident page, backup and cell holds exactly the shadow's K/V. */
  checkData(): void {
    const g = this.geometry;
    const device = this.cache.store.deviceStorage as RefPageStorage;
    const host = this.cache.store.hostStorage as RefPageStorage;
    const per = g.numKvHeads * g.headDim;
    const ks = new Float32Array(g.headDim);
    const vs = new Float32Array(g.headDim);
    const expect = (storage: RefPageStorage, slot: number, offset: number, row: Float32Array, what: string) => {
      for (let h = 0; h < g.numKvHeads; h++) {
        readKvRow(storage, slot, 0, h, offset, ks);
        readKvRow(storage, slot, 1, h, offset, vs);
        for (let d = 0; d < g.headDim; d++) {
          const k = ks[d];
          const v = vs[d];
          if (!Object.is(k, row[h * g.headDim + d]) || !Object.is(v, row[per + h * g.headDim + d])) {
            throw new Error(`${what}: ${storage.location} slot ${slot} offset ${offset} holds the wrong K/V`);
          }
        }
      }
    };
    for (const [id, layers] of this.shadow) {
      layers.forEach((rows, l) => {
        const seq = this.cache.rawSequences.get(id)!;
        const raw = seq.layers[l];
        if (raw.kind === 'token') {
          // A parked sequence's cells wait in the host pool.
          const [storage, slots] = seq.parked ? [host, seq.parked.cellHosts[l]!] : [device, raw.slots];
          for (let c = 0; c < raw.filled; c++) {
            const pos = raw.positions[c];
            if (pos >= 0) expect(storage, slots[Math.floor(c / g.pageSize)], c % g.pageSize, rows[pos], `seq ${id} layer ${l} cell ${c}`);
          }
          return;
        }
        raw.pages.forEach((p, i) => {
          for (let o = 0; o < g.pageSize; o++) {
            const pos = i * g.pageSize + o;
            if (pos >= rows.length) break;
            const what = `seq ${id} layer ${l} page ${i}`;
            if (p.slot >= 0) expect(device, p.slot, o, rows[pos], what);
            if (p.host >= 0) expect(host, p.host, o, rows[pos], what);
          }
        });
      });
    }
  }
}

/**
 * Runs `f` on a device-path harness and its host-path twin: a pool that runs out is a
 * result (the two must agree on it), any other error is thrown.
 */
export function onBoth(device: CacheHarness, host: CacheHarness): <T>(f: (h: CacheHarness) => T) => [T | Error, T | Error] {
  return <T>(f: (h: CacheHarness) => T) =>
    [device, host].map((h) => {
      try {
        return f(h);
      } catch (e) {
        if (e instanceof PoolExhaustedError) return e;
        throw e;
      }
    }) as [T | Error, T | Error];
}

/** Rounds the harnesses' random draws to thirds, so that scores tie. */
export function coarsen(...harnesses: CacheHarness[]): void {
  for (const h of harnesses) {
    const next = h.next;
    (h as { next: () => number }).next = () => Math.floor(next() * 3) / 3;
  }
}
