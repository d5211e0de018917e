// The build's decisions as pure functions (unit-tested in src/build-config.test.ts):
// which GPU architectures to compile for, and where nvcc is.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Real code for A100 (8.0), RTX 30xx / A10 (8.6), L4 / L40 / RTX 40xx (8.9), H100 / H200 (9.0). */
export const DEFAULT_ARCHS = Object.freeze([80, 86, 89, 90]);
/** The kernels use cp.async, ldmatrix and bf16 mma: Ampere (compute capability 8.0) and newer. */
export const MIN_ARCH = 80;
export const FALLBACK_NVCC = '/usr/local/cuda/bin/nvcc';

/**
 * ARKVALE_CUDA_ARCHS ("90", "80,90", "sm_86 sm_90") as sorted, distinct
 * architecture numbers; unset or empty gives DEFAULT_ARCHS. Throws on anything
 * else, naming the variable.
 */
export function parseArchs(value) {
  if (value === undefined || value.trim() === '') return [...DEFAULT_ARCHS];
  const archs = new Set();
  for (const item of value.split(/[\s,;]+/).filter(Boolean)) {
    const m = /^(?:sm_|compute_)?(\d{2,3})$/.exec(item.trim());
    if (!m) throw new Error(`ARKVALE_CUDA_ARCHS: '${item}' is not an architecture (write e.g. 90, 80,90 or sm_86)`);
    const arch = Number(m[1]);
    if (arch < MIN_ARCH) throw new Error(`ARKVALE_CUDA_ARCHS: sm_${arch} is below the supported sm_${MIN_ARCH} (the kernels need Ampere or newer)`);
    archs.add(arch);
  }
  return [...archs].sort((a, b) => a - b);
}

/**
 * nvcc -gencode flags for these archs: real code (SASS) for each, plus PTX of the
 * highest, which the driver compiles for any newer GPU at load time. The SASS of
 * one major version is compiled from one PTX, that of its lowest listed arch
 * (compute_80 -> sm_80, sm_86, sm_89): the kernels use nothing newer than sm_80
 * within a major, and each PTX costs a compiler front-end pass per file.
 */
export function gencodeFlags(archs) {
  if (archs.length === 0) throw new Error('no CUDA architectures to build for');
  const sorted = [...archs].sort((a, b) => a - b);
  const virtualOf = (arch) => sorted.find((a) => Math.floor(a / 10) === Math.floor(arch / 10));
  const highest = sorted[sorted.length - 1];
  return [...sorted.map((a) => `-gencode=arch=compute_${virtualOf(a)},code=sm_${a}`), `-gencode=arch=compute_${highest},code=compute_${highest}`];
}

/**
 * The generated units (one per kernel family and dtype) grouped into `count`
 * bundles of about equal cost, one nvcc process each: each nvcc process pays a
 * second or two of host-side work however small its unit, so on few cores fewer,
 * larger files build several times faster. Greedy, largest first, deterministic.
 */
export function bundleUnits(units, count) {
  const bundles = Array.from({ length: Math.max(1, Math.min(count, units.length)) }, () => ({ cost: 0, units: [] }));
  const byCost = [...units].sort((a, b) => b.cost - a.cost || a.name.localeCompare(b.name));
  for (const u of byCost) {
    const target = bundles.reduce((best, b) => (b.cost < best.cost ? b : best));
    target.cost += u.cost;
    target.units.push(u.name);
  }
  return bundles.map((b) => b.units.sort());
}

/** Two bundles per core: enough to keep every core busy to the end. */
export function bundleCount(cores) {
  return Math.max(2, 2 * cores);
}

/** The archs as status.json and buildInfo() list them: ['sm_80', ..., 'compute_90']. */
export function archLabels(archs) {
  return [...archs.map((a) => `sm_${a}`), `compute_${Math.max(...archs)}`];
}

/** Where nvcc may be, in order: $CUDACXX, each $PATH entry, then /usr/local/cuda/bin/nvcc. */
export function nvccCandidates(env) {
  const out = [];
  if (env.CUDACXX) out.push({ path: env.CUDACXX, source: 'CUDACXX' });
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) out.push({ path: join(dir, 'nvcc'), source: 'PATH' });
  out.push({ path: FALLBACK_NVCC, source: 'default' });
  return out;
}

export function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first candidate that is an executable file, or undefined. */
export function findNvcc(env, executable = isExecutable) {
  return nvccCandidates(env).find((c) => executable(c.path));
}

/** "13.0.48" from `nvcc --version` ("Cuda compilation tools, release 13.0, V13.0.48"), or undefined. */
export function parseNvccVersion(output) {
  const full = /\bV(\d+\.\d+\.\d+)\b/.exec(output);
  if (full) return full[1];
  const release = /release (\d+\.\d+)/.exec(output);
  return release ? release[1] : undefined;
}

/**
 * ARKVALE_CUDA_EXTRA: extra `arkvale codegen` options (e.g. "--head-dim 256
 * --dtype bf16"), merged into the build's kernels; unset gives none.
 */
export function parseExtraArgs(value) {
  return (value ?? '').split(/\s+/).filter(Boolean);
}
