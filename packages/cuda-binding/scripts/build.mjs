#!/usr/bin/env node
// The package's build (`pnpm --filter @arkvale/cuda-binding build`):
//   1. generate the kernels and the TypeScript launch surface (generate-kernels.mjs);
//   2. find nvcc ($CUDACXX, $PATH, /usr/local/cuda/bin/nvcc) and, when found, compile
//      the addon with cmake-js for the architectures of $ARKVALE_CUDA_ARCHS (default
//      sm_80, sm_86, sm_89, sm_90 + compute_90 PTX) on every core, the kernels in a
//      few large nvcc bundles (generated/bundles); without nvcc the build still
//      succeeds and build/status.json says why there is no addon;
//   3. tsc.
// Flags: --ts-only skips step 2 (keeps whatever addon is there).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { archLabels, findNvcc, gencodeFlags, parseArchs, parseExtraArgs, parseNvccVersion } from './build-config.mjs';
import { generateKernels } from './generate-kernels.mjs';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const buildDir = join(packageDir, 'build');
const statusFile = join(buildDir, 'status.json');
const addonFile = join(buildDir, 'Release', 'arkvale_cuda.node');
const require = createRequire(import.meta.url);
const log = (line) => process.stdout.write(`cuda-binding: ${line}\n`);
const seconds = (since) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

function writeStatus(status) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify(status, null, 2)}\n`);
}

function run(file, args, env = process.env) {
  execFileSync(file, args, { cwd: packageDir, stdio: 'inherit', env });
}

function buildAddon(nvcc) {
  const archs = parseArchs(process.env.ARKVALE_CUDA_ARCHS);
  const labels = archLabels(archs);
  const version = parseNvccVersion(execFileSync(nvcc.path, ['--version'], { encoding: 'utf8' })) ?? 'unknown';
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const common = ['--out', 'build', '--log-level', 'warn'];
  const started = performance.now();
  log(`compiling the addon for ${labels.join(', ')} with nvcc ${version} (${nvcc.path}, from ${nvcc.source}) on ${availableParallelism()} core(s)`);
  // Not `cmake-js compile`: it configures only once (so a changed arch list would
  // be ignored) and answers a compile error with a full clean rebuild.
  run(process.execPath, [
    cmakeJs,
    'configure',
    ...common,
    `--CDCMAKE_CUDA_COMPILER=${nvcc.path}`,
    `--CDARKVALE_CUDA_GENCODE=${gencodeFlags(archs).join(';')}`,
    `--CDARKVALE_ARCH_LABELS=${labels.join(',')}`,
  ]);
  run(process.execPath, [cmakeJs, 'build', ...common, '--parallel', String(availableParallelism())]);
  writeStatus({ built: true, archs: labels, nvcc: version });
  log(`built build/Release/arkvale_cuda.node in ${seconds(started)}`);
}

async function main() {
  const tsOnly = process.argv.includes('--ts-only');
  const started = performance.now();
  await generateKernels({ packageDir, extraArgs: parseExtraArgs(process.env.ARKVALE_CUDA_EXTRA), log });
  if (!tsOnly) {
    const nvcc = findNvcc(process.env);
    if (nvcc) {
      // A failed compile must not leave an older status claiming success.
      writeStatus({ built: false, reason: 'the last build of the addon failed' });
      buildAddon(nvcc);
    } else {
      // An addon from an earlier build would no longer match this build's kernels.
      rmSync(addonFile, { force: true });
      writeStatus({ built: false, reason: 'nvcc was not found at build time' });
      log('nvcc was not found ($CUDACXX, $PATH, /usr/local/cuda/bin/nvcc): no addon; the package loads and reports that');
    }
  }
  run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
  log(`done in ${seconds(started)}`);
}

main().catch((err) => {
  process.stderr.write(`cuda-binding: build failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
