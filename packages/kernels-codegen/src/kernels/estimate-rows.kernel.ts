/**
 * The estimates select_resident ranks (Backend.selectResident): for batch row r
 * (rows i32 [B, 5], core's SELECT_ROW_FIELDS) and each of its `candidates`
 * consecutive pages from `firstCandidate`, the page's digest row comes from the page
 * tables (i32 [rowsCap, 3, tablePages], field 1) and its query from row r of q
 * [B, numHeads, D]. out [B, groups, maxCandidates] (f32) gets exactly what `estimate`
 * gives that page (the same per-page block code), and -Infinity past a row's
 * candidates. One block per pagesPerBlock candidates (estimatePagesPerBlock); grid
 * (ceil(maxCandidates / pagesPerBlock), B).
 */
import { blockIdx, i64, offset, shared, syncthreads, threadIdx, type Float16, type Global, type GlobalIn, type f32, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg, ceilDiv } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { BLOCK_SUMS, estimateBlock, MAX_BLOCK_PAGES, WARPS, type EstimateSpec } from './estimate.kernel.js';
import { checkPowerOfTwoHeadDim, digestName } from './layout.js';

/** Columns of `rows`, and where the page table's digest field starts (core's PAGE_TABLE_FIELDS.digest). */
const ROW_FIELDS = 5;
const DIGEST_FIELD = 1;

export function estimateRows<T extends Float16>(
  spec: EstimateSpec,
  q: GlobalIn<T>,
  digests: GlobalIn<T>,
  tables: GlobalIn<i32>,
  rows: GlobalIn<i32>,
  out: Global<f32>,
  batch: i32,
  maxCandidates: i32,
  tablePages: i32,
  numHeads: i32,
  numKvHeads: i32,
  groups: i32,
  pagesPerBlock: i32,
): void {
  const sums = shared<f32>(BLOCK_SUMS);
  const pageRows = shared<i32>(MAX_BLOCK_PAGES);
  const r = blockIdx.y;
  const i0 = blockIdx.x * pagesPerBlock;
  // The whole block leaves together, so estimateBlock's shuffles and barriers see all of it.
  if (r >= batch) return;
  const desc = r * ROW_FIELDS;
  if (threadIdx.x < pagesPerBlock) {
    // A candidate's digest row; -1 past the row's candidates (-Infinity), -2 past the output.
    const i = i0 + threadIdx.x;
    let row: i32 = -2;
    if (i < maxCandidates) row = i < rows[desc + 3] ? tables[(i64(rows[desc]) * 3 + DIGEST_FIELD) * tablePages + rows[desc + 2] + i] : -1;
    pageRows[threadIdx.x] = row;
  }
  syncthreads();
  const at = r * groups * maxCandidates + i0;
  estimateBlock(
    spec,
    offset(q, r * numHeads * spec.headDim),
    digests,
    pageRows,
    pagesPerBlock,
    offset(out, at),
    1,
    maxCandidates,
    numHeads,
    numKvHeads,
    groups,
    sums,
  );
}

export const estimateRowsKernel = defineKernel<EstimateSpec>({
  family: 'estimate_rows',
  summary: "a decode batch's candidate estimates from the page tables' digest rows, as estimate computes them (Backend.selectResident)",
  source: import.meta.url,
  kernel: estimateRows,
  name: (s) => `estimate_rows_${digestName(s.variant)}_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: () => [ceilDiv(arg('maxCandidates'), arg('pagesPerBlock')), arg('batch'), 1],
  specs: (m) => product({ variant: m.digest, dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkPowerOfTwoHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
