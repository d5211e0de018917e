// The build's kernel generation keeps specialisations merged into generated/
// (arkvale codegen --merge, ARKVALE_CUDA_EXTRA) and regenerates them each build.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KERNELS, runCodegenCli } from '@arkvale/kernels-codegen';
import { describe, expect, it } from 'vitest';
import { defaultKernelNames, generateKernels, mergedSpecs } from '../scripts/generate-kernels.mjs';

const quiet = { out: () => {}, err: () => {} };
// Two small families keep these tests fast; the build generates the whole library the same way.
const kernels = KERNELS.filter((d) => d.family === 'kv_append' || d.family === 'rms_norm');
const defaults = defaultKernelNames(kernels);
const manifestNames = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, 'generated', 'manifest.json'), 'utf8')) as { kernels: { name: string }[] }).kernels.map((k) => k.name);

describe('kernel generation for the build', () => {
  it('keeps merged shapes across rebuilds, in the CUDA sources and the launch surface', async () => {
    const pkg = mkdtempSync(join(tmpdir(), 'arkvale-gen-'));
    expect(await generateKernels({ packageDir: pkg, kernels })).toBe(defaults.length);
    expect(mergedSpecs(join(pkg, 'generated'), kernels).size).toBe(0);

    const args = ['--kernel', 'kv_append', '--head-dim', '256', '--page-size', '8', '--dtype', 'bf16', '--merge', '--quiet', '--out', join(pkg, 'generated')];
    expect(await runCodegenCli(args, quiet)).toBe(0);
    const added = manifestNames(pkg).filter((n) => !defaults.includes(n));
    expect(added).toHaveLength(1);

    const lines: string[] = [];
    expect(await generateKernels({ packageDir: pkg, kernels, log: (l) => lines.push(l) })).toBe(defaults.length + 1);
    expect(lines.join('\n')).toMatch(/1 merged beyond the default matrix/);
    expect(manifestNames(pkg)).toContain(added[0]);
    expect(existsSync(join(pkg, 'generated', 'cuda', `${added[0]}.cuh`))).toBe(true);
    expect(readFileSync(join(pkg, 'src', 'generated', 'kv-append.ts'), 'utf8')).toContain(`'${added[0]}'`);
    expect([...mergedSpecs(join(pkg, 'generated'), kernels).keys()]).toEqual(['kv_append']);
  });

  it('bundles every generated unit exactly once for nvcc', async () => {
    const pkg = mkdtempSync(join(tmpdir(), 'arkvale-gen-'));
    await generateKernels({ packageDir: pkg, kernels, bundles: 3 });
    const dir = join(pkg, 'generated');
    const bundles = readdirSync(join(dir, 'bundles'));
    expect(bundles).toEqual(['bundle_00.cu', 'bundle_01.cu', 'bundle_02.cu']);
    const included = bundles.flatMap((b) => [...readFileSync(join(dir, 'bundles', b), 'utf8').matchAll(/#include "\.\.\/cuda-units\/(.+)"/g)].map((m) => m[1]));
    expect(included.sort()).toEqual(readdirSync(join(dir, 'cuda-units')).sort());
    await generateKernels({ packageDir: pkg, kernels, bundles: 2 });
    expect(readdirSync(join(dir, 'bundles'))).toEqual(['bundle_00.cu', 'bundle_01.cu']);
  });

  it('adds ARKVALE_CUDA_EXTRA shapes and drops merged kernels the generator no longer knows', async () => {
    const pkg = mkdtempSync(join(tmpdir(), 'arkvale-gen-'));
    const n = await generateKernels({ packageDir: pkg, kernels, extraArgs: ['--head-dim', '256'] });
    expect(n).toBeGreaterThan(defaults.length);
    expect(manifestNames(pkg).filter((name) => /hd256/.test(name)).length).toBe(n - defaults.length);
    const file = join(pkg, 'generated', 'manifest.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    manifest.kernels.push({ ...manifest.kernels[0], family: 'retired_family', name: 'retired_family_f16' });
    writeFileSync(file, JSON.stringify(manifest));
    const warnings: string[] = [];
    await generateKernels({ packageDir: pkg, kernels, log: (l) => warnings.push(l) });
    expect(warnings[0]).toBe('dropping merged kernel retired_family_f16: no kernel family retired_family any more');
    expect(manifestNames(pkg)).not.toContain('retired_family_f16');
  });

  it('rejects bad ARKVALE_CUDA_EXTRA options with the generator message', async () => {
    const pkg = mkdtempSync(join(tmpdir(), 'arkvale-gen-'));
    await expect(generateKernels({ packageDir: pkg, kernels, extraArgs: ['--head-dim', 'huge'] })).rejects.toThrow(/^ARKVALE_CUDA_EXTRA="--head-dim huge": /);
  });
});
