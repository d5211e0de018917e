import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ARCHS,
  FALLBACK_NVCC,
  archLabels,
  bundleCount,
  bundleUnits,
  findNvcc,
  gencodeFlags,
  nvccCandidates,
  parseArchs,
  parseExtraArgs,
  parseNvccVersion,
} from '../scripts/build-config.mjs';

describe('ARKVALE_CUDA_ARCHS', () => {
  it('defaults to sm_80, sm_86, sm_89 and sm_90 with compute_90 PTX', () => {
    expect(parseArchs(undefined)).toEqual([80, 86, 89, 90]);
    expect(parseArchs('  ')).toEqual([...DEFAULT_ARCHS]);
    expect(gencodeFlags(parseArchs(undefined))).toEqual([
      '-gencode=arch=compute_80,code=sm_80',
      '-gencode=arch=compute_80,code=sm_86',
      '-gencode=arch=compute_80,code=sm_89',
      '-gencode=arch=compute_90,code=sm_90',
      '-gencode=arch=compute_90,code=compute_90',
    ]);
    expect(archLabels(parseArchs(undefined))).toEqual(['sm_80', 'sm_86', 'sm_89', 'sm_90', 'compute_90']);
  });

  it('narrows to the listed archs, with PTX of the highest', () => {
    expect(parseArchs('90')).toEqual([90]);
    expect(gencodeFlags([90])).toEqual(['-gencode=arch=compute_90,code=sm_90', '-gencode=arch=compute_90,code=compute_90']);
    expect(parseArchs('90,80')).toEqual([80, 90]);
    expect(parseArchs('sm_86 sm_86;compute_89')).toEqual([86, 89]);
    // One PTX per major feeds its SASS; the PTX shipped is the highest arch's own.
    expect(gencodeFlags([80, 86])).toEqual([
      '-gencode=arch=compute_80,code=sm_80',
      '-gencode=arch=compute_80,code=sm_86',
      '-gencode=arch=compute_86,code=compute_86',
    ]);
    expect(gencodeFlags([86, 89])[1]).toBe('-gencode=arch=compute_86,code=sm_89');
    expect(archLabels([80, 86])).toEqual(['sm_80', 'sm_86', 'compute_86']);
    expect(parseArchs('100,120')).toEqual([100, 120]);
  });

  it('refuses what is not an architecture, or one below sm_80', () => {
    expect(() => parseArchs('hopper')).toThrow(/ARKVALE_CUDA_ARCHS: 'hopper' is not an architecture/);
    expect(() => parseArchs('75,90')).toThrow(/sm_75 is below the supported sm_80/);
    expect(() => gencodeFlags([])).toThrow(/no CUDA architectures/);
  });
});

describe('nvcc bundles', () => {
  const units = [
    { name: 'paged_decode_f16.cu', cost: 90 },
    { name: 'estimate_f16.cu', cost: 40 },
    { name: 'kv_append_f16.cu', cost: 35 },
    { name: 'argmax_f16.cu', cost: 10 },
    { name: 'rope_f16.cu', cost: 10 },
  ];

  it('groups units into bundles of about equal cost, every unit once', () => {
    const bundles = bundleUnits(units, 2);
    expect(bundles).toEqual([['paged_decode_f16.cu'], ['argmax_f16.cu', 'estimate_f16.cu', 'kv_append_f16.cu', 'rope_f16.cu']]);
    expect(bundleUnits(units, 3).flat().sort()).toEqual(units.map((u) => u.name).sort());
    expect(bundleUnits(units, 10)).toHaveLength(5);
    expect(bundleUnits(units, 0)).toHaveLength(1);
  });

  it('makes two bundles per core', () => {
    expect(bundleCount(2)).toBe(4);
    expect(bundleCount(1)).toBe(2);
  });
});

describe('nvcc detection', () => {
  const env = { CUDACXX: '/opt/cuda-13/bin/nvcc', PATH: '/usr/bin:/opt/bin' };

  it('looks at CUDACXX, then PATH, then /usr/local/cuda/bin/nvcc', () => {
    expect(nvccCandidates(env).map((c) => `${c.source}:${c.path}`)).toEqual([
      'CUDACXX:/opt/cuda-13/bin/nvcc',
      'PATH:/usr/bin/nvcc',
      'PATH:/opt/bin/nvcc',
      `default:${FALLBACK_NVCC}`,
    ]);
    expect(nvccCandidates({}).map((c) => c.path)).toEqual([FALLBACK_NVCC]);
  });

  it('takes the first executable candidate', () => {
    expect(findNvcc(env, () => true)).toEqual({ path: '/opt/cuda-13/bin/nvcc', source: 'CUDACXX' });
    expect(findNvcc(env, (f) => f === '/opt/bin/nvcc')).toEqual({ path: '/opt/bin/nvcc', source: 'PATH' });
    expect(findNvcc(env, (f) => f === FALLBACK_NVCC)?.source).toBe('default');
    expect(findNvcc(env, () => false)).toBeUndefined();
  });

  it('reads the version nvcc prints', () => {
    const out = 'nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\nBuild cuda_13.0.r13.0/compiler.36424714_0\n';
    expect(parseNvccVersion(out)).toBe('13.0.88');
    expect(parseNvccVersion('Cuda compilation tools, release 12.4')).toBe('12.4');
    expect(parseNvccVersion('gcc (Debian 12.2.0-14) 12.2.0')).toBeUndefined();
  });
});

describe('ARKVALE_CUDA_EXTRA', () => {
  it('splits extra codegen options on whitespace', () => {
    expect(parseExtraArgs(undefined)).toEqual([]);
    expect(parseExtraArgs(' --head-dim 256  --dtype bf16 ')).toEqual(['--head-dim', '256', '--dtype', 'bf16']);
  });
});
