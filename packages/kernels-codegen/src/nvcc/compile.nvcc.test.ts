/**
 * CI's compile check: every kernel of the default matrix, the kernels of a shape
 * outside it (head dim 256, pages of 8 and 64, via the CLI) and the translator's golden
 * files compile with nvcc for sm_90 with every warning an error. Specialisations of a
 * family and dtype share one translation unit, so the whole matrix is ~40 nvcc
 * processes run in parallel up to the core count; the timing is printed.
 *
 * Without nvcc on PATH this fails, unless ARKVALE_SKIP_NVCC=1 (then it is skipped).
 * Run alone with `pnpm --filter @arkvale/kernels-codegen test:nvcc`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCodegenCli } from '../cli/run.js';
import { generate, LAYOUT } from '../output/generate.js';
import type { Manifest } from '../output/manifest.js';
import { GOLDEN_CASES, GOLDEN_DIR, GOLDEN_LIBRARY } from '../test-support/golden-cases.js';
import { tempDir } from '../test-support/temp-dir.js';
import { compileAll, NVCC, NVCC_FLAGS, nvccVersion, parsePtxas, type CompileResult } from './nvcc.js';

const version = nvccVersion();
const skip = !version && process.env.ARKVALE_SKIP_NVCC === '1';

function report(label: string, results: readonly CompileResult[], wallSeconds: number): void {
  const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 5);
  const cpu = results.reduce((s, r) => s + r.seconds, 0);
  console.log(
    `[nvcc] ${label}: ${results.length} units, ${wallSeconds.toFixed(1)} s wall (${cpu.toFixed(1)} s summed, ${availableParallelism()} parallel); ` +
      `slowest: ${slowest.map((r) => `${path.basename(r.unit)} ${r.seconds.toFixed(1)} s`).join(', ')}`,
  );
}

/**
 * The translation units of a generated folder in groups of two (a test each, so
 * that every test stays short while both cores stay busy), labelled by their families.
 * bf16 units are left out: a kernel's bf16 source is its f16 source with another
 * 2-byte element type (the same shared memory), the addon's build compiles both for
 * every architecture, and with them this test took 11 of CI's 15 minutes on 2 cores.
 */
function unitGroups(outDir: string, manifest: Manifest, size = 2): [string, string[]][] {
  const familyOf = new Map(manifest.kernels.map((k) => [k.name, k.family]));
  const units = manifest.units.filter((u) => !u.file.includes('_bf16')).sort((a, b) => a.file.localeCompare(b.file));
  const groups: [string, string[]][] = [];
  for (let i = 0; i < units.length; i += size) {
    const chunk = units.slice(i, i + size);
    const families = [...new Set(chunk.map((u) => familyOf.get(u.kernels[0])!))];
    groups.push([families.join(', '), chunk.map((u) => path.join(outDir, LAYOUT.units, u.file))]);
  }
  return groups;
}

async function compileUnits(label: string, outDir: string, units: readonly string[], manifest: Manifest | undefined): Promise<CompileResult[]> {
  const jobs = units.map((unit) => ({ unit, output: path.join(outDir, `${path.basename(unit)}.o`) }));
  const started = performance.now();
  const results = await compileAll(jobs);
  report(label, results, (performance.now() - started) / 1000);
  const failures = results.filter((r) => !r.ok);
  expect(
    failures.map(
      (f) =>
        `${path.basename(f.unit)}:\n${f.log
          .split('\n')
          .filter((l) => !l.startsWith('ptxas info'))
          .slice(0, 30)
          .join('\n')}`,
    ),
  ).toEqual([]);
  if (manifest) {
    // The manifest's shared-memory figures are what ptxas allocates.
    const usage = new Map(results.flatMap((r) => [...parsePtxas(r.log)]));
    const compiled = manifest.kernels.filter(
      (k) => usage.has(k.name) || units.some((u) => manifest.units.some((m) => m.kernels.includes(k.name) && u.endsWith(`/${m.file}`))),
    );
    for (const k of compiled) {
      expect(usage.get(k.name), `ptxas report for ${k.name}`).toBeDefined();
      expect(usage.get(k.name)!.sharedBytes, `static shared memory of ${k.name}`).toBe(k.staticSharedBytes);
    }
    const spills = compiled.filter((k) => usage.get(k.name)!.spillBytes > 0).map((k) => `${k.name} (${usage.get(k.name)!.spillBytes} B)`);
    if (spills.length) console.log(`[nvcc] ${label}: register spills in ${spills.join(', ')}`);
  }
  return results;
}

describe.skipIf(skip)(`nvcc compiles every generated kernel (${NVCC} ${NVCC_FLAGS.join(' ')})`, () => {
  it('finds nvcc', () => {
    expect(
      version,
      `${NVCC} is not on PATH: install the CUDA toolkit (nvcc 12+), point NVCC at it, or set ARKVALE_SKIP_NVCC=1 to skip the compile test`,
    ).toBeDefined();
  });

  // Without nvcc these are skipped (and 'finds nvcc' fails), never reported as passed.
  // Generating takes about a second; each group of units compiles in its own test.
  const defaultOut = tempDir('nvcc-default');
  const { manifest } = generate({ outDir: defaultOut });
  it.skipIf(!version).each(unitGroups(defaultOut, manifest))('compiles the default matrix: %s', { timeout: 120_000 }, async (families, units) => {
    await compileUnits(`default matrix, ${families}`, defaultOut, units, manifest);
  });

  it.skipIf(!version)('compiles the default matrix: the registry', { timeout: 120_000 }, async () => {
    await compileUnits('registry', defaultOut, [path.join(defaultOut, LAYOUT.cuda, 'arkvale_registry.cu')], undefined);
  });

  // Outside the default matrix, through the CLI: head dim 256, pages of 8 and 64.
  const cliOut = tempDir('nvcc-cli');
  let cliErr = '';
  const cliCode = runCodegenCli(['--head-dim', '256', '--page-size', '8,64', '--group', '4', '--out', cliOut, '--quiet'], {
    out: () => {},
    err: (t) => (cliErr += t),
  });
  it.skipIf(!version)('`arkvale-codegen --head-dim 256 --page-size 8,64 --group 4` generates', async () => {
    expect(cliErr).toBe('');
    expect(await cliCode).toBe(0);
  });
  const cliManifest = JSON.parse(readFileSync(path.join(cliOut, 'manifest.json'), 'utf8')) as Manifest;
  it.skipIf(!version).each(unitGroups(cliOut, cliManifest))('compiles head dim 256, pages 8 and 64: %s', { timeout: 120_000 }, async (families, units) => {
    await compileUnits(`head dim 256, pages 8 and 64, ${families}`, cliOut, units, cliManifest);
  });

  it.skipIf(!version)("compiles the translator's golden files", { timeout: 120_000 }, async () => {
    const out = tempDir('nvcc-golden');
    generate({
      outDir: out,
      families: [GOLDEN_LIBRARY.def.family],
      matrix: { dtype: ['f16'], headDim: [64], pageSize: [16], group: [1], digest: ['cuboid-mean'] },
    });
    const unit = path.join(out, 'golden.cu');
    writeFileSync(
      unit,
      [
        ...GOLDEN_CASES.map((c) => `#include "${path.join(GOLDEN_DIR, `${c.name}.cuh`)}"`),
        `#include "${path.join(GOLDEN_DIR, 'paged_decode_f16_hd128_ps32_g4.cuh')}"`,
        '',
      ].join('\n'),
    );
    const [r] = await compileAll([{ unit, output: `${unit}.o`, includes: [path.join(out, LAYOUT.cuda)] }]);
    expect(r.ok, r.log).toBe(true);
  });
});
