#!/usr/bin/env node
// Prepares the GPU check of the CUDA backend (tools/gpu/gpu-check.sh) here, on a
// machine with nvcc but no GPU:
//
//   node tools/gpu/gpu-check.mjs prepare [--out DIR]
//
// builds every package with the CUDA kernels for sm_90 only (H100 / H200; set
// ARKVALE_CUDA_ARCHS for another card) and writes the self-contained bundle with a
// compressed Node binary to .gpu/bundle (git-ignored; --out: another folder, for a
// bundle made while a device call may still be carrying the last one). Then, on the GPU machine, with
// .gpu/bundle carried and the repository (for models/, examples/ and tools/) as the
// working directory:
//
//   bash tools/gpu/gpu-check.sh .gpu/bundle "$OUT"
//
// (and gpu-decode-bench.sh, gpu-acceptance.sh with the same bundle).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { parseCommand } from '../lib/args.mjs';
import { bundleForNode } from '../release/esbuild-node.mjs';

const {
  positionals,
  values: opts,
  fail,
} = parseCommand({
  usage: 'node tools/gpu/gpu-check.mjs prepare [--out DIR]',
  about: `Builds every package with the CUDA kernels for sm_90 (ARKVALE_CUDA_ARCHS for another
card) and writes the GPU bundle to .gpu/bundle: the arkvale bundle (compressed Node),
the addon's self-test, and bench.mjs, decode-bench.mjs and throughput-bench.mjs as one
file each. Carry it to the GPU machine and run bash tools/gpu/gpu-check.sh there.`,
  positionals: { names: 'the command (prepare)', min: 1, max: 1 },
  options: { out: { type: 'string', value: 'DIR', default: '.gpu/bundle', help: 'where the bundle goes (relative to the repository)' } },
});
if (positionals[0] !== 'prepare') fail(`unknown command "${positionals[0]}" (prepare)`);

const root = resolve(import.meta.dirname, '../..');
const env = { ...process.env, ARKVALE_CUDA_ARCHS: process.env.ARKVALE_CUDA_ARCHS ?? '90' };
const run = (command, args) => execFileSync(command, args, { cwd: root, env, stdio: 'inherit' });
run('pnpm', ['nx', 'run-many', '-t', 'build', '--output-style=static']);
const out = resolve(root, opts.out);
run(process.execPath, ['tools/release/bundle.mjs', '--out', out, '--compress-node']);
// Beside it: the addon's own self-test (allocator, ring, copies, events, cuBLAS, graphs,
// errors), pnpm bench (with the serving workloads and server steps), the model-shape
// decode and throughput benches and the hostile load, each as one file (the GPU machine
// has no node_modules), and the engine's worker script, which WorkerEngine looks for
// beside the file that imports it. gpu-check.sh, gpu-decode-bench.sh and gpu-acceptance.sh
// run these from the bundle, and acceptance-verdict.mjs, decode-chart.mjs and the Python
// peers (tools/peers/) from the repository.
for (const [entry, file] of [
  ['packages/cuda-binding/scripts/gpu-selftest.mjs', 'addon-selftest.mjs'],
  ['tools/bench/bench.mjs', 'bench.mjs'],
  ['tools/bench/decode-bench.mjs', 'decode-bench.mjs'],
  ['tools/bench/products-bench.mjs', 'products-bench.mjs'],
  ['tools/bench/throughput-bench.mjs', 'throughput-bench.mjs'],
  ['tools/gpu/hostile-load.mjs', 'hostile-load.mjs'],
  ['packages/engine/dist/engine-worker.js', 'engine-worker.js'],
  ['packages/engine/dist/ranks/rank-worker.js', 'rank-worker.js'],
  ['packages/engine/dist/ranks/rank-process.js', 'rank-process.js'],
]) {
  await bundleForNode(resolve(root, entry), resolve(out, file));
}
// The scripts and the addon gzipped: the tracked tree and the bundle must fit the 64 MiB a
// device call carries (the gpu/ shell scripts unpack them first; the sm_90 addon is 9 MB,
// 3 MB gzipped). Node's own unpacked copy is left out.
rmSync(resolve(out, 'node'), { force: true });
for (const file of packed(out)) {
  writeFileSync(`${file}.gz`, gzipSync(readFileSync(file), { level: 9 }));
  rmSync(file);
}
console.log(`prepared ${opts.out} (scripts and addon gzipped): carry it and run "bash tools/gpu/gpu-check.sh ${opts.out} $OUT" on the GPU machine`);

/** Every file under `dir` that travels gzipped: the .mjs and .js scripts and the .node addons. */
function packed(dir) {
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => /\.(mjs|js|node)$/.test(f) && statSync(f).isFile());
}
