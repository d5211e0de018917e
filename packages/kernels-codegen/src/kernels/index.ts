/** The kernel library, in generation order. */
import type { KernelDefinition } from '../spec/define-kernel.js';
import { causalPrefillKernel } from './causal-prefill.kernel.js';
import { copyPagesKernel, recallListedKernel } from './copy-pages.kernel.js';
import { argmaxKernel, sampleKernel } from './decoding.kernel.js';
import { residualAddKernel, siluGateKernel, siluGatePackedKernel } from './elementwise.kernel.js';
import { embeddingGatherKernel } from './embedding.kernel.js';
import { gemvKernel } from './gemv.kernel.js';
import { streamGemmKernel } from './stream-gemm.kernel.js';
import { estimateKernel } from './estimate.kernel.js';
import { estimateRowsKernel } from './estimate-rows.kernel.js';
import { prefillKeyScoresKernel, prefillKeySumsKernel, prefillKeySumsMergeKernel } from './key-scores.kernel.js';
import { kvAppendFp8Kernel, kvAppendKernel } from './kv-append.kernel.js';
import { pageDigestFp8Kernel, pageDigestKernel } from './page-digest.kernel.js';
import { pagedDecodeFp8Kernel, pagedDecodeKernel, pagedDecodeMergeKernel } from './paged-decode.kernel.js';
import { pagedPrefillFp8Kernel, pagedPrefillKernel } from './paged-prefill.kernel.js';
import { addRmsNormKernel, rmsNormKernel } from './rms-norm.kernel.js';
import { ropeKernel, ropeQkvKernel, ropeTableKernel } from './rope.kernel.js';
import { scatterI32Kernel } from './scatter.kernel.js';
import { selectAttendKernel } from './select-attend.kernel.js';
import { selectResidentKernel } from './select-resident.kernel.js';
import { evictTokenCellsKernel, placeTokenCellsKernel } from './token-cells.kernel.js';
import { pagedTokenScoresFp8Kernel, pagedTokenScoresKernel } from './token-scores.kernel.js';
import { fillUniformKernel } from './random.kernel.js';

export const KERNELS: readonly KernelDefinition[] = [
  pagedDecodeKernel,
  pagedDecodeMergeKernel,
  pagedTokenScoresKernel,
  causalPrefillKernel,
  pagedPrefillKernel,
  prefillKeyScoresKernel,
  prefillKeySumsKernel,
  prefillKeySumsMergeKernel,
  kvAppendKernel,
  pageDigestKernel,
  estimateKernel,
  estimateRowsKernel,
  selectResidentKernel,
  selectAttendKernel,
  placeTokenCellsKernel,
  evictTokenCellsKernel,
  scatterI32Kernel,
  copyPagesKernel,
  recallListedKernel,
  rmsNormKernel,
  addRmsNormKernel,
  ropeKernel,
  ropeQkvKernel,
  ropeTableKernel,
  siluGateKernel,
  siluGatePackedKernel,
  residualAddKernel,
  gemvKernel,
  streamGemmKernel,
  embeddingGatherKernel,
  argmaxKernel,
  sampleKernel,
  fillUniformKernel,
  // fp8 KV pages (kvDtype 'fp8'): the kernels that read or write pages, for e4m3 codes with scale bytes.
  kvAppendFp8Kernel,
  pageDigestFp8Kernel,
  pagedDecodeFp8Kernel,
  pagedTokenScoresFp8Kernel,
  pagedPrefillFp8Kernel,
];
