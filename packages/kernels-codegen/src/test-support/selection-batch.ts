/**
 * Random decode batches for the device-side selection kernels (estimate_rows,
 * select_resident), as reference tensors: page tables with sinks, candidates and a
 * window per row, queries and digests. With `exact` data (small multiples of 1/4 and
 * 1/8, a power-of-two head count) every estimate is exact in f32, so the device's
 * scores equal the reference's bit for bit and plans can be compared exactly.
 */
import { RefTensor, ReferenceBackend, type DigestVariant, type KvGeometry, type RefDigestStorage, type SelectResidentArgs } from '@arkvale/core';
import { EmuBuffer } from '../emulator/memory.js';
import { roundHalf } from '../ir/half.js';
import type { Rng } from './random.js';

/** One batch row: its logical pages, candidate range and how many candidates are resident. */
export interface RowCase {
  readonly numPages: number;
  readonly first: number;
  readonly count: number;
  /** Chance that a candidate page is resident (pages outside the candidates always are). */
  readonly residentChance: number;
  /** At most this many resident candidates (default: no limit). */
  readonly maxResident?: number;
}

export interface BatchCase {
  readonly rows: readonly RowCase[];
  readonly k: number;
  readonly groups: number;
  readonly variant: DigestVariant;
  /** Coarse values in {-1, 0, 1}: many ties. */
  readonly coarse: boolean;
  /** Exact small fractions (see above) instead of uniform floats. */
  readonly exact?: boolean;
}

export interface Batch {
  readonly g: KvGeometry;
  readonly args: SelectResidentArgs;
  readonly q: RefTensor;
  readonly digests: RefDigestStorage;
  readonly tables: RefTensor;
  readonly rows: RefTensor;
  readonly tablePages: number;
}

export const batchGeometry = (headDim: number, numHeads = 4, numKvHeads = 2): KvGeometry => ({
  numLayers: 1,
  numHeads,
  numKvHeads,
  headDim,
  pageSize: 16,
  bytesPerElement: 2,
});

const ref = new ReferenceBackend();

export function buildBatch(rng: Rng, c: BatchCase, g: KvGeometry = batchGeometry(32)): Batch {
  const b = c.rows.length;
  const tablePages = Math.max(...c.rows.map((r) => r.numPages)) + 2;
  const rowsCap = b + 1;
  // Batch rows use table rows in a shuffled order; one table row stays unused.
  const tableRows = rng.shuffle(Array.from({ length: rowsCap }, (_, i) => i)).slice(0, b);
  const digestRows = 24;
  const t = new Int32Array(rowsCap * 3 * tablePages);
  for (let i = 0; i < t.length; i++) t[i] = 1000 + i; // junk where no row looks
  const value = (exactScale: number) => (c.coarse ? rng.int(3) - 1 : c.exact !== false ? (rng.int(17) - 8) / exactScale : rng.uniform(-1, 1));
  let maxResident = 0;
  c.rows.forEach((rc, r) => {
    const base = tableRows[r] * 3 * tablePages;
    let slot = 0;
    let host = 0;
    let residentCandidates = 0;
    let resident = 0;
    for (let p = 0; p < rc.numPages; p++) {
      const candidate = p >= rc.first && p < rc.first + rc.count;
      const isResident = !candidate || (rng.next() < rc.residentChance && residentCandidates < (rc.maxResident ?? Infinity));
      if (candidate && isResident) residentCandidates++;
      if (isResident) resident++;
      t[base + p] = isResident ? slot++ : -1;
      t[base + tablePages + p] = rng.int(digestRows);
      t[base + 2 * tablePages + p] = candidate || rng.next() < 0.5 ? host++ : -1;
    }
    maxResident = Math.max(maxResident, resident);
  });
  const rows = c.rows.flatMap((rc, r) => [tableRows[r], rc.numPages, rc.first, rc.count, rc.numPages > 0 ? 1 + rng.int(16) : 0]);
  const digests = ref.createDigestStorage(digestRows, g) as RefDigestStorage;
  // Digests as the device stores them: f16 values (the KV dtype of these tests).
  for (let i = 0; i < digests.data.length; i++) digests.data[i] = roundHalf(value(8));
  if (c.variant === 'sphere') {
    // A radius in element 0 of the second row, zeros after it (as computeDigest writes).
    for (let r = 0; r < digestRows * g.numKvHeads; r++) {
      const at = r * 2 * g.headDim + g.headDim;
      digests.data[at] = Math.abs(digests.data[at]);
      digests.data.fill(0, at + 1, at + g.headDim);
    }
  }
  const qData = Float32Array.from({ length: b * g.numHeads * g.headDim }, () => roundHalf(value(4)));
  const q = new RefTensor(qData, [b, g.numHeads, g.headDim], 'f32');
  const tables = new RefTensor(t, [rowsCap, 3, tablePages], 'i32');
  const rowsT = new RefTensor(Int32Array.from(rows), [b, 5], 'i32');
  const maxCandidates = Math.max(1, ...c.rows.map((r) => r.count)) + 3;
  const args: SelectResidentArgs = {
    q,
    digests,
    variant: c.variant,
    groups: c.groups,
    tables,
    rows: rowsT,
    k: c.k,
    maxCandidates,
    maxPages: maxResident + 2,
  };
  return { g, args, q, digests, tables, rows: rowsT, tablePages };
}

/** The batch's inputs as emulator buffers (q and digests in f16: the test values are exact there). */
export function deviceInputs(batch: Batch): { q: EmuBuffer; digests: EmuBuffer; tables: EmuBuffer; rows: EmuBuffer } {
  return {
    q: EmuBuffer.from('f16', batch.q.f32),
    digests: EmuBuffer.from('f16', batch.digests.data),
    tables: EmuBuffer.from('i32', batch.tables.i32),
    rows: EmuBuffer.from('i32', batch.rows.i32),
  };
}
