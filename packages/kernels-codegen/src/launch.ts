/**
 * Run-time helpers a binding needs next to the generated launch surface: launch
 * choices and limits that depend on a kernel's internals (tokens per step, split
 * counts, the query heads an estimate block sums). This
 * entry point loads no translator (no ts-morph), so bundles that use it stay small.
 */
export { pagedDecodeSplits, pagedDecodeStep } from './kernels/paged-decode.kernel.js';
export { pagedPrefillSplits } from './kernels/paged-prefill.kernel.js';
export { uniformAt } from './kernels/random.kernel.js';
export { estimatePagesPerBlock, MAX_HEADS as ESTIMATE_MAX_HEADS } from './kernels/estimate.kernel.js';
export { gemvShapeError, GEMV_MAX_ROWS } from './kernels/gemv.kernel.js';
export { streamGemmShapeError, streamGemmTiles, STREAM_GEMM_MAX_ROWS, type StreamGemmTiles } from './kernels/stream-gemm.kernel.js';
