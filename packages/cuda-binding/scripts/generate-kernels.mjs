// Step 1 of the build: the CUDA kernels and their TypeScript launch surface.
//
// generated/ holds the default matrix plus every specialisation merged into it
// since (by `arkvale codegen ... --merge --out packages/cuda-binding/generated`,
// or by ARKVALE_CUDA_EXTRA at build time). Each build regenerates all of them
// from their recorded specs with the current generator, so merged shapes never
// go stale; `rm -rf generated` drops them. The launch surface (generated/ts) is
// mirrored into src/generated, where tsc compiles it into dist.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MATRIX, KERNELS, MANIFEST_FILE, generate, parseManifest, runCodegenCli, writeIfChanged } from '@arkvale/kernels-codegen';
import { bundleCount, bundleUnits } from './build-config.mjs';

/** Names of the default matrix's kernels (build-key.mjs compares against them). */
export const DEFAULT_KERNELS_FILE = 'default-kernels.json';

export function defaultKernelNames(defs = KERNELS) {
  return defs.flatMap((d) => d.specs(DEFAULT_MATRIX).map((s) => d.name(s)));
}

/**
 * Specs of the kernels in an existing manifest that the default matrix does not
 * produce, by family. Ones the current generator no longer accepts are dropped
 * with a warning.
 */
export function mergedSpecs(outDir, defs = KERNELS, warn = () => {}) {
  const byFamily = new Map();
  let manifest;
  try {
    manifest = parseManifest(readFileSync(join(outDir, MANIFEST_FILE), 'utf8'));
  } catch {
    return byFamily;
  }
  const defaults = new Set(defaultKernelNames(defs));
  for (const k of manifest.kernels) {
    if (defaults.has(k.name)) continue;
    const def = defs.find((d) => d.family === k.family);
    const problem = def ? def.validate?.(k.spec) : `no kernel family ${k.family} any more`;
    if (problem) {
      warn(`dropping merged kernel ${k.name}: ${problem}`);
      continue;
    }
    byFamily.set(k.family, [...(byFamily.get(k.family) ?? []), k.spec]);
  }
  return byFamily;
}

/** The kernel definitions with extra specs appended to their families' default ones. */
export function withExtraSpecs(defs, extras) {
  return defs.map((def) => {
    const more = extras.get(def.family);
    if (!more || more.length === 0) return def;
    return {
      ...def,
      specs: (matrix) => {
        const base = def.specs(matrix);
        const names = new Set(base.map((s) => def.name(s)));
        return [...base, ...more.filter((s) => !names.has(def.name(s)))];
      },
    };
  });
}

/** Mirrors the .ts files of `from` into `to`, writing only what changed and removing the rest. */
export function mirrorFolder(from, to) {
  mkdirSync(to, { recursive: true });
  const files = readdirSync(from).filter((f) => f.endsWith('.ts'));
  let written = 0;
  for (const f of files) if (writeIfChanged(join(to, f), readFileSync(join(from, f), 'utf8')) === 'written') written++;
  for (const f of readdirSync(to)) if (!files.includes(f)) rmSync(join(to, f), { force: true });
  return written;
}

/** Where the build's nvcc inputs go: generated/bundles/bundle_NN.cu, each including several units. */
export const BUNDLES_DIR = 'bundles';

/**
 * Writes generated/bundles/: the manifest's units in `count` bundles of about
 * equal size (see bundleUnits), and removes bundles of earlier runs.
 */
export function writeBundles(outDir, count) {
  const manifest = parseManifest(readFileSync(join(outDir, MANIFEST_FILE), 'utf8'));
  const size = (kernel) => statSync(join(outDir, 'cuda', `${kernel}.cuh`)).size;
  const units = manifest.units.map((u) => ({ name: u.file, cost: u.kernels.reduce((n, k) => n + size(k), 0) }));
  const dir = join(outDir, BUNDLES_DIR);
  mkdirSync(dir, { recursive: true });
  const files = bundleUnits(units, count).map((members, i) => {
    const file = `bundle_${String(i).padStart(2, '0')}.cu`;
    const lines = [`// ${file}: written by the build of @arkvale/cuda-binding (scripts/generate-kernels.mjs); one nvcc process for several units.`];
    for (const unit of members) lines.push(`#include "../cuda-units/${unit}"`);
    writeIfChanged(join(dir, file), `${lines.join('\n')}\n`);
    return file;
  });
  for (const f of readdirSync(dir)) if (!files.includes(f)) rmSync(join(dir, f), { force: true });
  return files.length;
}

/**
 * Generates generated/ and src/generated/; returns the number of kernels.
 * `kernels` (default: the whole library) lets tests generate a few families.
 */
export async function generateKernels({ packageDir, extraArgs = [], log = () => {}, kernels: defs = KERNELS, bundles = bundleCount(availableParallelism()) }) {
  const outDir = join(packageDir, 'generated');
  const extras = mergedSpecs(outDir, defs, log);
  const report = generate({ outDir, kernels: withExtraSpecs(defs, extras) });
  writeIfChanged(join(outDir, DEFAULT_KERNELS_FILE), `${JSON.stringify(defaultKernelNames(defs).sort(), null, 1)}\n`);
  let kernels = report.manifest.kernels.length;
  if (extraArgs.length > 0) {
    let err = '';
    const families = [...new Set(defs.map((d) => d.family))].join(',');
    const code = await runCodegenCli([...extraArgs, ...(defs === KERNELS ? [] : ['--kernel', families]), '--merge', '--quiet', '--out', outDir], {
      out: () => {},
      err: (t) => (err += t),
    });
    if (code !== 0) throw new Error(`ARKVALE_CUDA_EXTRA="${extraArgs.join(' ')}": ${err.trim()}`);
    kernels = parseManifest(readFileSync(join(outDir, MANIFEST_FILE), 'utf8')).kernels.length;
  }
  if (!existsSync(join(outDir, 'ts'))) throw new Error(`the generator wrote no launch surface into ${outDir}/ts`);
  const tsWritten = mirrorFolder(join(outDir, 'ts'), join(packageDir, 'src', 'generated'));
  const bundleFiles = writeBundles(outDir, bundles);
  const merged = [...extras.values()].reduce((n, specs) => n + specs.length, 0);
  log(
    `${kernels} kernels (${merged} merged beyond the default matrix${extraArgs.length ? ', plus ARKVALE_CUDA_EXTRA' : ''}): ` +
      `${report.written.length} CUDA/TS file(s) written, ${tsWritten} launch-surface file(s) updated, ${bundleFiles} nvcc bundles`,
  );
  return kernels;
}
