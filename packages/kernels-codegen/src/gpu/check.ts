/**
 * The GPU check in two halves, so the build can happen on one machine and the run on
 * another: `prepareGpuCheck` generates and compiles the kernels, the registry and the
 * harness into DIR and writes the jobs and their emulated results; after
 * `DIR/harness DIR OUTDIR` has run on a GPU, `verifyGpuCheck` compares.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, LAYOUT } from '../output/generate.js';
import { KernelProject } from '../translate/kernel-project.js';
import { compileAll, NVCC } from '../nvcc/nvcc.js';
import { compareOutput, GpuJobs, type ExpectedOutput } from './jobs.js';
import { buildScenarios, buildTimings, GPU_CHECK_MATRIX } from './scenarios.js';

const HARNESS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'harness.cu');

export async function prepareGpuCheck(dir: string): Promise<void> {
  const kernels = path.join(dir, 'kernels');
  generate({ outDir: kernels, matrix: GPU_CHECK_MATRIX });
  const units = readdirSync(path.join(kernels, LAYOUT.units))
    .filter((f) => f.endsWith('.cu'))
    .map((f) => path.join(kernels, LAYOUT.units, f));
  const include = path.join(kernels, LAYOUT.cuda);
  const sources = [...units, path.join(include, 'arkvale_registry.cu'), HARNESS];
  const results = await compileAll(sources.map((unit, i) => ({ unit, output: path.join(dir, `obj${i}.o`), includes: [include] })));
  const failed = results.filter((r) => !r.ok);
  if (failed.length) throw new Error(`nvcc failed:\n${failed.map((f) => `${f.unit}\n${f.log}`).join('\n')}`);
  const objects = sources.map((_, i) => path.join(dir, `obj${i}.o`));
  const link = spawnSync(NVCC, ['-arch=sm_90', '-cudart', 'static', '-o', path.join(dir, 'harness'), ...objects], { encoding: 'utf8' });
  if (link.status !== 0) throw new Error(`link failed: ${link.stderr}`);
  const jobs = new GpuJobs(new KernelProject());
  buildScenarios(jobs);
  buildTimings(jobs);
  writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(jobs.write(dir)));
}

/** Disagreements between the GPU's outputs in `outDir` and the emulator (empty: all match). */
export function verifyGpuCheck(dir: string, outDir: string): string[] {
  const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as ExpectedOutput[];
  return expected.flatMap((e) => compareOutput(e, readFileSync(path.join(outDir, e.file))) ?? []);
}
