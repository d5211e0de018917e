/**
 * The estimates select_resident ranks (Backend.selectResident): for batch row r
 * (rows i32 [B, 5], core's SELECT_ROW_FIELDS) and each of its `candidates`
 * consecutive pages from `firstCandidate`, the page's digest row comes from the page
 * tables (i32 [rowsCap, 3, tablePages], field 1) and its query from row r of q
 * [B, numHeads, D]. out [B, groups, maxCandidates] (f32) gets exactly what `estimate`
 * gives that page (the same per-page block code), and -Infinity past a row's
 * candidates. One block per candidate; grid (maxCandidates, B).
 */
import { blockIdx, i64, offset, shared, threadIdx, type Float16, type Global, type GlobalIn, type f32, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { product } from '../spec/matrix.js';
import { estimatePage, MAX_HEADS, WARPS, type EstimateSpec } from './estimate.kernel.js';
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
): void {
  const sums = shared<f32>(MAX_HEADS);
  const r = blockIdx.y;
  const i = blockIdx.x;
  if (r >= batch || i >= maxCandidates) return;
  const desc = r * ROW_FIELDS;
  const at = r * groups * maxCandidates + i;
  // The whole block leaves together, so estimatePage's shuffles and barrier see all of it.
  if (i >= rows[desc + 3]) {
    for (let g = threadIdx.x; g < groups; g += WARPS * 32) out[at + g * maxCandidates] = -Infinity;
    return;
  }
  const page = rows[desc + 2] + i;
  const digestRow = tables[(i64(rows[desc]) * 3 + DIGEST_FIELD) * tablePages + page];
  estimatePage(spec, offset(q, r * numHeads * spec.headDim), digests, i64(digestRow), offset(out, at), maxCandidates, numHeads, numKvHeads, groups, sums);
}

export const estimateRowsKernel = defineKernel<EstimateSpec>({
  family: 'estimate_rows',
  summary: "a decode batch's candidate estimates from the page tables' digest rows, as estimate computes them (Backend.selectResident)",
  source: import.meta.url,
  kernel: estimateRows,
  name: (s) => `estimate_rows_${digestName(s.variant)}_${s.dtype}_hd${s.headDim}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => WARPS * 32,
  grid: () => [arg('maxCandidates'), arg('batch'), 1],
  specs: (m) => product({ variant: m.digest, dtype: m.dtype, headDim: m.headDim }),
  validate: (s) => checkPowerOfTwoHeadDim(s.headDim),
  unitKey: (s) => s.dtype,
});
