#!/usr/bin/env node
// pnpm bundle [--out DIR] [--model DIR] [--compress-node]
//
// Writes a folder that runs ArkVale-TS on a Linux x86-64 machine where Node.js is not
// installed (a GPU server): this machine's Node binary, the CLI bundled by esbuild into
// one file (and the engine's worker), the native addons (CPU, and CUDA when it was built), a launcher `./arkvale`
// and, with --model, a model the launcher uses by default. `--compress-node` stores
// the Node binary xz-compressed (a quarter of the size, for transfers); the launcher
// unpacks it on first use. Run `pnpm build` first (pnpm bundle builds the CLI).
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { parseCommand } from '../lib/args.mjs';
import { bundleForNode } from './esbuild-node.mjs';

const root = resolve(import.meta.dirname, '../..');

function options() {
  const { values } = parseCommand({
    usage: 'pnpm bundle [--out DIR] [--model DIR] [--compress-node]   (or node tools/release/bundle.mjs ... after pnpm build)',
    about: `Writes a folder that runs ArkVale-TS on a Linux x86-64 machine without Node.js: this
machine's Node binary, the CLI and the engine's worker bundled by esbuild, the native
addons, a launcher ./arkvale and, with --model, a model it uses by default.`,
    options: {
      out: { type: 'string', value: 'DIR', shownDefault: 'dist/arkvale-bundle', help: 'where the bundle goes (replaced)' },
      model: { type: 'string', value: 'DIR', help: 'a model folder (with config.json) to include as the default model' },
      'compress-node': { type: 'boolean', help: 'store the Node binary xz-compressed (the launcher unpacks it on first use)' },
    },
  });
  return {
    out: values.out === undefined ? join(root, 'dist', 'arkvale-bundle') : resolve(values.out),
    model: values.model === undefined ? undefined : resolve(values.model),
    compressNode: values['compress-node'],
  };
}

const LAUNCHER = `#!/bin/sh
# ArkVale-TS, self-contained: ./arkvale --help
here="$(cd "$(dirname "$0")" && pwd)"
node="$here/node"
if [ ! -x "$node" ]; then
  # The Node binary travels compressed; unpack it once, next to this script or in TMPDIR.
  [ -w "$here" ] || node="\${TMPDIR:-/tmp}/arkvale-node-$(id -u)"
  if [ ! -x "$node" ]; then
    xz -dc "$here/node.xz" > "$node.partial" && chmod +x "$node.partial" && mv "$node.partial" "$node" || exit 1
  fi
fi
# The addons travel in build/, not in package folders: point the loaders there.
addons="$here/build/Release"
[ -f "$addons/arkvale_cpu.node" ] && export ARKVALE_CPU_ADDON="\${ARKVALE_CPU_ADDON:-$addons/arkvale_cpu.node}"
[ -f "$addons/arkvale_cuda.node" ] && export ARKVALE_CUDA_ADDON="\${ARKVALE_CUDA_ADDON:-$addons/arkvale_cuda.node}"
[ -d "$here/model" ] && export ARKVALE_MODEL="\${ARKVALE_MODEL:-$here/model}"
exec "$node" "$here/lib/arkvale.mjs" "$@"
`;

/** Addons in build/Release/ and the CUDA build's record (archs, or why none was built) in build/, as their loaders expect. */
function copyAddons(out) {
  const dir = join(out, 'build', 'Release');
  mkdirSync(dir, { recursive: true });
  const copied = [];
  for (const [pkg, file] of [
    ['cpu-backend', 'arkvale_cpu.node'],
    ['cuda-binding', 'arkvale_cuda.node'],
  ]) {
    const from = join(root, 'packages', pkg, 'build', 'Release', file);
    if (!existsSync(from)) continue;
    copyFileSync(from, join(dir, file));
    copied.push(file);
  }
  const status = join(root, 'packages/cuda-binding/build/status.json');
  if (existsSync(status)) copyFileSync(status, join(out, 'build', 'status.json'));
  return copied;
}

/**
 * The grammar engine of constrained output (@mlc-ai/web-xgrammar, WebAssembly inside one
 * script), beside the CLI and the worker, where the engine looks for it at run time
 * (lib/node_modules): esbuild cannot inline it, since the engine imports it by a path it
 * resolves then.
 */
function copyGrammarEngine(out) {
  const main = createRequire(join(root, 'packages/engine/package.json')).resolve('@mlc-ai/web-xgrammar');
  const pkgDir = dirname(dirname(main));
  const to = join(out, 'lib', 'node_modules', '@mlc-ai', 'web-xgrammar');
  mkdirSync(join(to, 'lib'), { recursive: true });
  copyFileSync(join(pkgDir, 'package.json'), join(to, 'package.json'));
  copyFileSync(main, join(to, 'lib', basename(main)));
}

/** What is bundled: build outputs (esbuild entry points) and where they go in the bundle. */
const ENTRIES = [
  // The CLI in lib/, beside the engine's worker (a thread started from a file next to the
  // code that starts it; the worker builds its backend itself with loadBackend).
  ['packages/cli/dist/bin.js', 'lib/arkvale.mjs'],
  ['packages/engine/dist/engine-worker.js', 'lib/engine-worker.js'],
  // Tensor-parallel ranks 1 to N-1: a thread each on the CPU, a process each on GPUs (RankWorkers).
  ['packages/engine/dist/ranks/rank-worker.js', 'lib/rank-worker.js'],
  ['packages/engine/dist/ranks/rank-process.js', 'lib/rank-process.js'],
];

function main() {
  const o = options();
  for (const [entry] of ENTRIES) {
    if (!existsSync(join(root, entry))) throw new Error(`${entry} is missing: run pnpm build first`);
  }
  rmSync(o.out, { recursive: true, force: true });
  mkdirSync(o.out, { recursive: true });
  return Promise.all(ENTRIES.map(([entry, out]) => bundleForNode(join(root, entry), join(o.out, out)))).then(() => {
    const addons = copyAddons(o.out);
    copyGrammarEngine(o.out);
    if (o.compressNode) writeFileSync(join(o.out, 'node.xz'), execFileSync('xz', ['-T2', '-c', process.execPath], { maxBuffer: 1 << 30 }));
    else copyFileSync(process.execPath, join(o.out, 'node'));
    writeFileSync(join(o.out, 'arkvale'), LAUNCHER);
    chmodSync(join(o.out, 'arkvale'), 0o755);
    if (o.model) {
      if (!existsSync(join(o.model, 'config.json'))) throw new Error(`--model ${o.model}: no config.json there`);
      cpSync(o.model, join(o.out, 'model'), { recursive: true });
    }
    const pkg = JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8'));
    writeFileSync(join(o.out, 'VERSION'), `@arkvale/cli ${pkg.version}, Node ${process.version} (${process.platform}-${process.arch})\n`);
    const size = (f) => (statSync(join(o.out, f)).size / 2 ** 20).toFixed(1);
    console.log(
      `wrote ${o.out}: lib/arkvale.mjs ${size('lib/arkvale.mjs')} MiB, ${o.compressNode ? `node.xz ${size('node.xz')}` : `node ${size('node')}`} MiB, ${addons.join(', ') || 'no addons'}${o.model ? `, model ${basename(o.model)}` : ''}`,
    );
    console.log(`run it there as ${join(o.out, 'arkvale')} --help`);
  });
}

main().catch((e) => {
  console.error(`bundle: ${e.message}`);
  process.exit(1);
});
