import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MANIFEST_FILE, parseManifest } from '../output/manifest.js';
import { tempDir } from '../test-support/temp-dir.js';
import { runCodegenCli } from './run.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCodegenCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('arkvale-codegen', () => {
  it('generates a new model shape outside the default matrix', async () => {
    const dir = tempDir('cli');
    const r = await cli('--head-dim', '256', '--page-size', '8,64', '--dtype', 'bf16', '--group', '4', '--out', dir);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/arkvale-codegen: \d+ kernels in .*: \d+ file\(s\) written, 0 unchanged, 0 removed/);
    const names = parseManifest(readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')).kernels.map((k) => k.name);
    expect(names).toContain('paged_decode_bf16_hd256_ps8_g4');
    expect(names).toContain('paged_decode_bf16_hd256_ps64_g4');
    expect(names).toContain('causal_prefill_bf16_hd256');
    expect(names).not.toContain('paged_decode_f16_hd128_ps32_g4');
    // --check passes on fresh output and fails once a file drifts.
    expect((await cli('--head-dim', '256', '--page-size', '8,64', '--dtype', 'bf16', '--group', '4', '--out', dir, '--check')).code).toBe(0);
    writeFileSync(path.join(dir, 'cuda', 'rope_bf16_hd256.cuh'), '');
    const stale = await cli('--head-dim=256', '--page-size=8', '--page-size=64', '--dtype=bf16', '--group=4', `--out=${dir}`, '--check');
    expect(stale.code).toBe(1);
    expect(stale.err).toContain('cuda/rope_bf16_hd256.cuh');
  });

  it('lists specialisations without writing', async () => {
    const r = await cli('--list', '--kernel', 'paged_decode,rms_norm', '--head-dim', '64', '--page-size', '16', '--group', '1,8');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      'paged_decode (4): paged_decode_f16_hd64_ps16_g1 paged_decode_f16_hd64_ps16_g8 paged_decode_bf16_hd64_ps16_g1 paged_decode_bf16_hd64_ps16_g8\n' +
        'rms_norm (2): rms_norm_f16 rms_norm_bf16\n',
    );
  });

  it.each([
    [['--dtype', 'fp8'], '--dtype: "fp8" is not one of f16, bf16'],
    [['--head-dim', 'x'], '--head-dim: "x" is not a positive integer'],
    [['--kernel', 'nope', '--out', '/tmp/unused-arkvale'], 'unknown kernel family nope'],
    [['--bogus'], "Unknown option '--bogus'"],
    [['--head-dim', '96', '--kernel', 'paged_decode', '--out', '/tmp/unused-arkvale'], 'head dim 96 must be a power of two'],
  ])('refuses %j with exit code 2', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
  });

  it('prints help and version', async () => {
    expect((await cli('--help')).out).toContain('Usage: arkvale-codegen');
    expect((await cli('-v')).out).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
