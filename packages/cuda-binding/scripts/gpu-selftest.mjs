#!/usr/bin/env node
// The GPU self-test of @arkvale/cuda-binding: runs the addon's runtime on a real
// GPU and checks it (allocator, pinned memory, copies through the staging ring,
// copyPages, events and timing, a generated kernel, cuBLAS gemm, graph replay,
// sync counting, error messages). One line per check; exit 0 when all pass, 1 on
// any failure, 2 when there is no usable GPU (the line says why).
//
//   node packages/cuda-binding/scripts/gpu-selftest.mjs [--seed N] [--ring-mib N]
//
// It imports the built package (../dist), so esbuild can bundle it with the addon.
import { cudaStatus, loadCudaAddon } from '../dist/index.js';
import { findResidualAdd } from '../dist/generated/index.js';
import { computeChecks } from './selftest/compute.mjs';
import { copyChecks } from './selftest/copies.mjs';
import { errorChecks } from './selftest/errors.mjs';
import { memoryChecks } from './selftest/memory.mjs';
import { MiB, random } from './selftest/util.mjs';

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const seed = option('--seed', 1);
// A small ring, so uploads larger than it (pieces) and wrap-around waits happen.
const ringBytes = option('--ring-mib', 4) * MiB;

let addon;
try {
  addon = loadCudaAddon();
} catch (err) {
  console.log(`gpu-selftest: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}
const status = cudaStatus();
console.log(`gpu-selftest: ${status.summary}`);
console.log(`gpu-selftest: addon built for ${status.addon.archs.join(', ')} (nvcc ${status.addon.nvcc}), ${status.kernels.total} kernels`);
addon.init(status.device.index, ringBytes);

const residualAdd = findResidualAdd({ dtype: 'f16' });
const context = { addon, rand: random(seed), ringBytes, kernels: { residualAdd } };
const checks = [...memoryChecks, ...copyChecks, ...computeChecks, ...errorChecks];
let failed = 0;
for (const c of checks) {
  const started = performance.now();
  try {
    const detail = await c.run(context);
    console.log(`ok   ${c.name}${detail ? `: ${detail}` : ''} [${(performance.now() - started).toFixed(0)} ms]`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${c.name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
const stats = addon.allocatorStats();
console.log(
  `gpu-selftest: ${checks.length - failed} of ${checks.length} checks passed (seed ${seed}); ` +
    `${addon.syncCount()} syncs, ${stats.cudaMallocCalls} cudaMalloc calls, ${stats.slabs} slabs held`,
);
process.exit(failed === 0 ? 0 : 1);
