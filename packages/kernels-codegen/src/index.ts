/**
 * @arkvale/kernels-codegen: ArkVale's GPU kernels, written once in a typed TypeScript
 * DSL (`@arkvale/kernels-codegen/dsl`) and translated by ts-morph into CUDA C++
 * specialised per page size, head dim, dtype and GQA group, with a manifest, a
 * TypeScript launch surface, and a CPU emulator that runs the same kernels.
 */

// Generation (what the CLI runs).
export { generate, selectKernels, GENERATOR, LAYOUT } from './output/generate.js';
export type { GenerateOptions, GenerateReport } from './output/generate.js';
export { specialise, unitName, SM90 } from './output/specialise.js';
export type { Specialisation } from './output/specialise.js';
export { MANIFEST_FILE, MANIFEST_VERSION, manifestJson, parseManifest } from './output/manifest.js';
export type { Manifest, ManifestKernel, ManifestUnit } from './output/manifest.js';
export { launchSurface, LAUNCH_TYPES } from './output/launch-surface.js';
export { writeIfChanged } from './output/write-if-changed.js';
export { runCodegenCli } from './cli/run.js';
export type { CodegenIo } from './cli/run.js';

// Specs, the matrix, launch geometry and parameter layout.
export { defineKernel, kernelSourcePath, kernelFunctionName } from './spec/define-kernel.js';
export type { KernelDefinition } from './spec/define-kernel.js';
export { DEFAULT_MATRIX, DTYPES, DIGEST_VARIANTS, product } from './spec/matrix.js';
export type { Matrix, DType, DigestVariant } from './spec/matrix.js';
export { arg, add, mul, ceilDiv, max, min, evalGeom, describeGeom, geomToTs } from './spec/geometry.js';
export type { Geom, Grid } from './spec/geometry.js';
export { paramLayout, MAX_PARAM_BYTES } from './spec/params.js';
export type { ParamSlot, ParamKind } from './spec/params.js';

// The kernel library.
export { KERNELS } from './kernels/index.js';
export { pagedDecodeKernel, pagedDecodeMergeKernel, pagedDecodeSplits, pagedDecodeStep } from './kernels/paged-decode.kernel.js';
export type { PagedDecodeSpec, MergeSpec } from './kernels/paged-decode.kernel.js';
export { pagedTokenScoresKernel } from './kernels/token-scores.kernel.js';
export { causalPrefillKernel } from './kernels/causal-prefill.kernel.js';
export type { PrefillSpec } from './kernels/causal-prefill.kernel.js';
export { prefillKeyScoresKernel, prefillKeySumsKernel, prefillKeySumsMergeKernel } from './kernels/key-scores.kernel.js';
export type { KeyScoresSpec } from './kernels/key-scores.kernel.js';
export { kvAppendKernel } from './kernels/kv-append.kernel.js';
export { pageDigestKernel } from './kernels/page-digest.kernel.js';
export { estimateKernel, estimatePagesPerBlock, MAX_HEADS as ESTIMATE_MAX_HEADS } from './kernels/estimate.kernel.js';
export type { EstimateSpec } from './kernels/estimate.kernel.js';
export { copyPagesKernel } from './kernels/copy-pages.kernel.js';
export { addRmsNormKernel, rmsNormKernel } from './kernels/rms-norm.kernel.js';
export { ropeKernel, ropeQkvKernel, ropeTableKernel } from './kernels/rope.kernel.js';
export type { RopeKernelSpec } from './kernels/rope.kernel.js';
export { residualAddKernel, siluGateKernel, siluGatePackedKernel } from './kernels/elementwise.kernel.js';
export { embeddingGatherKernel } from './kernels/embedding.kernel.js';
export { gemvKernel, gemvShapeError, GEMV_MAX_ROWS } from './kernels/gemv.kernel.js';
export type { GemvSpec } from './kernels/gemv.kernel.js';
export { streamGemmKernel, streamGemmShapeError, streamGemmTiles, STREAM_GEMM_MAX_ROWS } from './kernels/stream-gemm.kernel.js';
export type { StreamGemmSpec, StreamGemmTiles } from './kernels/stream-gemm.kernel.js';
export { argmaxKernel, sampleKernel } from './kernels/decoding.kernel.js';
export type { LogitsSpec } from './kernels/decoding.kernel.js';
export type { PagedSpec, DigestSpec, DtypeSpec } from './kernels/layout.js';

// The translator and its output.
export { KernelProject } from './translate/kernel-project.js';
export { translateKernel } from './translate/translate-kernel.js';
export type { KernelRequest } from './translate/translate-kernel.js';
export { DslError } from './translate/errors.js';
export type { SpecObject, SpecValue } from './translate/context.js';
export { printKernelHeader, printKernelUnit, printGroupUnit } from './emit/cuda/kernel-source.js';
export { PRELUDE, PRELUDE_FILE } from './emit/cuda/prelude.js';
export { printKernelJs } from './emit/js/kernel-js.js';
export type { KernelIR, HelperFn, Param, Expr, Stmt, SourceLoc } from './ir/nodes.js';
export type { DslType, ScalarName } from './ir/types.js';

// The CPU emulator.
export { EmulatedKernel } from './emulator/emulate.js';
export type { EmuArg } from './emulator/emulate.js';
export { emulateKernel } from './emulator/emulate-kernel.js';
export type { EmulatedSpecialisation } from './emulator/emulate-kernel.js';
export { EmuBuffer } from './emulator/memory.js';
export type { EmuPtr, ElemType } from './emulator/memory.js';
export { EmuFault } from './emulator/runtime.js';

// The GPU check: build here, run the harness on a GPU machine, verify here.
export { prepareGpuCheck, verifyGpuCheck } from './gpu/check.js';
