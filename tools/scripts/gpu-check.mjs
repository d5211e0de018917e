#!/usr/bin/env node
// Prepares the GPU check of the CUDA backend (tools/scripts/gpu-check.sh) here, on a
// machine with nvcc but no GPU:
//
//   node tools/scripts/gpu-check.mjs prepare
//
// builds every package with the CUDA kernels for sm_90 only (H100 / H200; set
// ARKVALE_CUDA_ARCHS for another card) and writes the self-contained bundle with a
// compressed Node binary to .gpu/bundle (git-ignored). Then, on the GPU machine, with
// .gpu/bundle carried and the repository (for models/) as the working directory:
//
//   bash tools/scripts/gpu-check.sh .gpu/bundle "$OUT"
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { bundleForNode } from './esbuild-node.mjs';

const root = resolve(import.meta.dirname, '../..');
const [cmd] = process.argv.slice(2);
if (cmd !== 'prepare') {
  console.error('usage: node tools/scripts/gpu-check.mjs prepare');
  process.exit(2);
}
const env = { ...process.env, ARKVALE_CUDA_ARCHS: process.env.ARKVALE_CUDA_ARCHS ?? '90' };
const run = (command, args) => execFileSync(command, args, { cwd: root, env, stdio: 'inherit' });
run('pnpm', ['nx', 'run-many', '-t', 'build', '--output-style=static']);
run(process.execPath, ['tools/scripts/bundle.mjs', '--out', '.gpu/bundle', '--compress-node']);
// Beside it: the addon's own self-test (allocator, ring, copies, events, cuBLAS, graphs,
// errors), pnpm bench and the model-shape decode and throughput benches, each as one file (the GPU
// machine has no node_modules).
for (const [entry, out] of [
  ['packages/cuda-binding/scripts/gpu-selftest.mjs', 'addon-selftest.mjs'],
  ['tools/scripts/bench.mjs', 'bench.mjs'],
  ['tools/scripts/decode-bench.mjs', 'decode-bench.mjs'],
  ['tools/scripts/throughput-bench.mjs', 'throughput-bench.mjs'],
]) {
  await bundleForNode(resolve(root, entry), resolve(root, '.gpu/bundle', out));
}
console.log('prepared .gpu/bundle: carry .gpu/bundle and run "bash tools/scripts/gpu-check.sh .gpu/bundle $OUT" on the GPU machine');
