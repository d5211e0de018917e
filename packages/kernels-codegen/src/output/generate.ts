/**
 * One generator run: specialise every kernel of the matrix, then write the CUDA
 * sources, the manifest and the TypeScript launch surface into one output folder.
 * Output is deterministic and written only where it changed; files of earlier runs
 * that this run no longer produces are removed (unless merging).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { printGroupUnit } from '../emit/cuda/kernel-source.js';
import { PRELUDE, PRELUDE_FILE } from '../emit/cuda/prelude.js';
import { printRegistry, REGISTRY_H, REGISTRY_HEADER, REGISTRY_SOURCE } from '../emit/cuda/registry.js';
import { KERNELS } from '../kernels/index.js';
import type { KernelDefinition } from '../spec/define-kernel.js';
import { DEFAULT_MATRIX, type Matrix } from '../spec/matrix.js';
import { KernelProject } from '../translate/kernel-project.js';
import { launchSurface } from './launch-surface.js';
import { MANIFEST_FILE, MANIFEST_VERSION, manifestJson, parseManifest, type Manifest, type ManifestKernel, type ManifestUnit } from './manifest.js';
import { specialise } from './specialise.js';
import { listFiles, removeFile, writeIfChanged } from './write-if-changed.js';

export const GENERATOR = '@arkvale/kernels-codegen';
/** Sub-folders of the output folder, all owned by the generator. */
export const LAYOUT = { cuda: 'cuda', units: 'cuda-units', ts: 'ts' } as const;

export interface GenerateOptions {
  readonly outDir: string;
  readonly matrix?: Matrix;
  /** Kernel definitions to generate (default: the whole library). */
  readonly kernels?: readonly KernelDefinition[];
  /** Only these families (default: all). */
  readonly families?: readonly string[];
  /** Keep kernels of an existing manifest that this run does not regenerate. */
  readonly merge?: boolean;
  /** Compute everything, write nothing: report what would change. */
  readonly dryRun?: boolean;
  readonly project?: KernelProject;
}

export interface GenerateReport {
  readonly manifest: Manifest;
  /** Paths relative to the output folder. */
  readonly written: readonly string[];
  readonly unchanged: readonly string[];
  readonly removed: readonly string[];
}

export function selectKernels(all: readonly KernelDefinition[], families?: readonly string[]): KernelDefinition[] {
  if (!families || families.length === 0) return [...all];
  const known = new Set(all.map((d) => d.family));
  const unknown = families.filter((f) => !known.has(f));
  if (unknown.length) throw new Error(`unknown kernel famil${unknown.length > 1 ? 'ies' : 'y'} ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  return all.filter((d) => families.includes(d.family));
}

export function generate(opts: GenerateOptions): GenerateReport {
  const project = opts.project ?? new KernelProject();
  const defs = selectKernels(opts.kernels ?? KERNELS, opts.families);
  const matrix = opts.matrix ?? DEFAULT_MATRIX;
  const files = new Map<string, string>([[`${LAYOUT.cuda}/${PRELUDE_FILE}`, PRELUDE]]);
  const entries: ManifestKernel[] = [];
  for (const def of defs) {
    for (const spec of def.specs(matrix)) {
      const s = specialise(project, def, spec);
      if (entries.some((e) => e.name === s.entry.name)) throw new Error(`two specialisations are named ${s.entry.name}`);
      entries.push(s.entry);
      files.set(`${LAYOUT.cuda}/${s.entry.files.header}`, s.header);
      files.set(`${LAYOUT.cuda}/${s.entry.files.source}`, s.source);
    }
  }
  const kept = opts.merge ? previousKernels(opts.outDir).filter((k) => !entries.some((e) => e.name === k.name)) : [];
  const kernels = [...kept, ...entries];
  const manifest: Manifest = { version: MANIFEST_VERSION, generator: GENERATOR, prelude: PRELUDE_FILE, kernels, units: units(kernels) };
  for (const u of manifest.units) {
    const headers = u.kernels.map((n) => `../${LAYOUT.cuda}/${n}.cuh`);
    files.set(`${LAYOUT.units}/${u.file}`, printGroupUnit(u.file, headers));
  }
  files.set(`${LAYOUT.cuda}/${REGISTRY_HEADER}`, REGISTRY_H);
  files.set(`${LAYOUT.cuda}/${REGISTRY_SOURCE}`, printRegistry(kernels));
  for (const [file, text] of launchSurface(manifest)) files.set(`${LAYOUT.ts}/${file}`, text);
  files.set(MANIFEST_FILE, manifestJson(manifest));
  return write(opts, files, kept);
}

function previousKernels(outDir: string): ManifestKernel[] {
  try {
    return [...parseManifest(readFileSync(path.join(outDir, MANIFEST_FILE), 'utf8')).kernels];
  } catch {
    return [];
  }
}

function units(kernels: readonly ManifestKernel[]): ManifestUnit[] {
  const byUnit = new Map<string, string[]>();
  for (const k of kernels) byUnit.set(k.files.unit, [...(byUnit.get(k.files.unit) ?? []), k.name]);
  return [...byUnit].sort(([a], [b]) => a.localeCompare(b)).map(([file, names]) => ({ file, kernels: names }));
}

function write(opts: GenerateOptions, files: Map<string, string>, kept: readonly ManifestKernel[]): GenerateReport {
  const written: string[] = [];
  const unchanged: string[] = [];
  const keep = new Set<string>(kept.flatMap((k) => [`${LAYOUT.cuda}/${k.files.header}`, `${LAYOUT.cuda}/${k.files.source}`]));
  for (const [rel, text] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const full = path.join(opts.outDir, rel);
    if (opts.dryRun) {
      let same = false;
      try {
        same = readFileSync(full, 'utf8') === text;
      } catch {
        same = false;
      }
      (same ? unchanged : written).push(rel);
    } else {
      (writeIfChanged(full, text) === 'written' ? written : unchanged).push(rel);
    }
  }
  const removed: string[] = [];
  for (const dir of Object.values(LAYOUT)) {
    for (const rel of listFiles(path.join(opts.outDir, dir)).map((f) => `${dir}/${f}`)) {
      if (files.has(rel) || keep.has(rel)) continue;
      removed.push(rel);
      if (!opts.dryRun) removeFile(path.join(opts.outDir, rel));
    }
  }
  const manifest = parseManifest(files.get(MANIFEST_FILE)!);
  return { manifest, written, unchanged, removed };
}
