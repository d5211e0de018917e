import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KERNELS } from '../kernels/index.js';
import { evalGeom } from '../spec/geometry.js';
import { DEFAULT_MATRIX } from '../spec/matrix.js';
import { MAX_PARAM_BYTES } from '../spec/params.js';
import { KernelProject } from '../translate/kernel-project.js';
import { tempDir } from '../test-support/temp-dir.js';
import { generate } from './generate.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { SHARED_LIMITS } from './shared-placement.js';
import { SM90 } from './specialise.js';

const project = new KernelProject();

describe('generate (default matrix)', () => {
  const out = tempDir('gen');
  const first = generate({ outDir: out, project });
  const manifest = first.manifest;
  const kernel = (name: string) => manifest.kernels.find((k) => k.name === name)!;

  it('specialises every kernel family over the matrix with readable names', () => {
    expect(new Set(manifest.kernels.map((k) => k.family))).toEqual(new Set(KERNELS.map((d) => d.family)));
    // 2 dtypes x 2 head dims x 2 page sizes x 4 groups
    expect(manifest.kernels.filter((k) => k.family === 'paged_decode')).toHaveLength(32);
    expect(manifest.kernels.filter((k) => k.family === 'page_digest')).toHaveLength(32);
    for (const name of [
      'paged_decode_f16_hd128_ps32_g4',
      'page_digest_cuboid_mean_bf16_hd64_ps16',
      'causal_prefill_bf16_hd128',
      'select_resident',
      'sample_f32',
    ]) {
      expect(kernel(name), name).toBeDefined();
    }
    expect(first.removed).toEqual([]);
  });

  it('stays within sm_90 limits: static and dynamic shared memory, threads per block, parameter bytes', () => {
    for (const k of manifest.kernels) {
      expect(k.staticSharedBytes, k.name).toBeLessThanOrEqual(SM90.staticSharedBytes);
      // A kernel's shared memory is either declared (up to 48 KB) or asked for at launch (past it).
      if (k.dynamicSharedBytes > 0) {
        expect(k.staticSharedBytes, k.name).toBe(0);
        expect(k.dynamicSharedBytes, k.name).toBeGreaterThan(SHARED_LIMITS.staticBytes);
        expect(k.dynamicSharedBytes, k.name).toBeLessThanOrEqual(SHARED_LIMITS.blockBytes);
      }
      expect(k.block[0] % 32, k.name).toBe(0);
      expect(k.block[0] * k.block[1] * k.block[2], k.name).toBeLessThanOrEqual(SM90.threadsPerBlock);
      expect(k.paramBytes, k.name).toBeLessThanOrEqual(MAX_PARAM_BYTES);
    }
    // The decode kernel's shared memory: the merge buffer, group x rows x head dim floats (+ m, l),
    // the cp.async ring, stages x tokens per row x [K|V] x threads x 16 bytes (3 stages of 1 token for group 8),
    // and the split's ticket (one i32: whether it is the last of its block of heads).
    expect(kernel('paged_decode_f16_hd128_ps32_g8').staticSharedBytes).toBe(8 * 8 * 128 * 4 + 2 * 8 * 8 * 4 + 3 * 1 * 2 * 128 * 16 + 4);
    expect(kernel('paged_decode_f16_hd128_ps32_g4').staticSharedBytes).toBe(4 * 8 * 128 * 4 + 2 * 4 * 8 * 4 + 3 * 2 * 2 * 128 * 16 + 4);
    // The prefill's shared memory: the Q tile (128 rows) and a K and a V tile (64 keys), rows of 136 padded dims.
    expect(kernel('causal_prefill_f16_hd128').dynamicSharedBytes).toBe((128 + 64 + 64) * 136 * 2);
    expect(kernel('causal_prefill_f16_hd64').staticSharedBytes).toBe((128 + 64 + 64) * 72 * 2);
  });

  it('records launch geometry over runtime arguments', () => {
    const decode = kernel('paged_decode_f16_hd128_ps32_g4');
    expect(decode.gridText).toEqual(['ceil(batch * numHeads / 4)', 'numSplits', '1']);
    expect(decode.grid.map((g) => evalGeom(g, { batch: 3, numHeads: 32, numSplits: 5 }))).toEqual([24, 5, 1]);
    expect(kernel('causal_prefill_bf16_hd128').grid.map((g) => evalGeom(g, { numTokens: 130, numHeads: 8 }))).toEqual([2, 8, 1]);
    expect(kernel('residual_add_f16').block).toEqual([256, 1, 1]);
  });

  it('lays out parameters as CUDA does (natural alignment, in order)', () => {
    const p = kernel('paged_decode_f16_hd128_ps32_g4').params;
    expect(p.map((s) => [s.name, s.kind, s.offset])).toEqual([
      ['q', 'pointer', 0],
      ['pool', 'pointer', 8],
      ['pageTable', 'pointer', 16],
      ['pageCounts', 'pointer', 24],
      ['lastPageLens', 'pointer', 32],
      ['partialOut', 'pointer', 40],
      ['partialLse', 'pointer', 48],
      ['out', 'pointer', 56],
      ['lse', 'pointer', 64],
      ['counters', 'pointer', 72],
      ['batch', 'i32', 80],
      ['numHeads', 'i32', 84],
      ['numKvHeads', 'i32', 88],
      ['numLists', 'i32', 92],
      ['maxPages', 'i32', 96],
      ['numSplits', 'i32', 100],
      ['splitTokens', 'i32', 104],
      ['scale', 'f32', 108],
    ]);
    expect(kernel('paged_decode_f16_hd128_ps32_g4').paramBytes).toBe(112);
  });

  it('writes the sources, units, launch surface and manifest it lists', () => {
    const text = readFileSync(path.join(out, MANIFEST_FILE), 'utf8');
    const onDisk = parseManifest(text);
    expect(onDisk).toEqual(manifest);
    // A manifest written before dynamic shared memory (no dynamicSharedBytes) reads as all static.
    const old = JSON.parse(text) as { kernels: Record<string, unknown>[] };
    for (const k of old.kernels) delete k.dynamicSharedBytes;
    expect(parseManifest(JSON.stringify(old)).kernels.every((k) => k.dynamicSharedBytes === 0)).toBe(true);
    const k = kernel('kv_append_bf16_hd64_ps16');
    expect(readFileSync(path.join(out, 'cuda', k.files.header), 'utf8')).toContain(
      'extern "C" __global__ void __launch_bounds__(128) kv_append_bf16_hd64_ps16(',
    );
    // Every kernel waits for the grid before it first, so that it may be launched as a programmatic dependent.
    for (const entry of manifest.kernels) {
      const header = readFileSync(path.join(out, 'cuda', entry.files.header), 'utf8');
      const kernelAt = header.indexOf('extern "C" __global__');
      const bodyAt = header.indexOf(') {\n', kernelAt) + 4;
      expect(header.slice(bodyAt).split('\n')[0], entry.name).toBe('  arkvale::grid_dependency_wait();');
    }
    expect(readFileSync(path.join(out, 'cuda', k.files.source), 'utf8')).toContain('#include "kv_append_bf16_hd64_ps16.cuh"');
    expect(readFileSync(path.join(out, 'cuda-units', k.files.unit), 'utf8')).toContain('#include "../cuda/kv_append_bf16_hd64_ps16.cuh"');
    expect(readFileSync(path.join(out, 'ts', 'kv-append.ts'), 'utf8')).toContain("name: 'kv_append_bf16_hd64_ps16'");
    expect(manifest.units.flatMap((u) => u.kernels).sort()).toEqual(manifest.kernels.map((x) => x.name).sort());
  });

  it('is deterministic and incremental: a second run writes nothing and touches no file', () => {
    const file = path.join(out, 'cuda', 'rms_norm_f16.cuh');
    const before = statSync(file).mtimeMs;
    const again = generate({ outDir: out, project });
    expect(again.written).toEqual([]);
    expect(again.removed).toEqual([]);
    expect(again.unchanged.length).toBe(first.written.length);
    expect(statSync(file).mtimeMs).toBe(before);
  });

  it('rewrites only what changed, and a dry run reports without writing', () => {
    const file = path.join(out, 'cuda', 'rms_norm_f16.cuh');
    writeFileSync(file, '// edited by hand\n');
    const dry = generate({ outDir: out, project, dryRun: true });
    expect(dry.written).toEqual(['cuda/rms_norm_f16.cuh']);
    expect(readFileSync(file, 'utf8')).toBe('// edited by hand\n');
    expect(generate({ outDir: out, project }).written).toEqual(['cuda/rms_norm_f16.cuh']);
  });

  it('removes what a smaller run no longer produces, unless merging', () => {
    const dir = tempDir('gen-small');
    generate({ outDir: dir, project, families: ['rms_norm', 'kv_append'] });
    const merged = generate({ outDir: dir, project, families: ['kv_append'], matrix: { ...DEFAULT_MATRIX, headDim: [256], pageSize: [8] }, merge: true });
    expect(merged.removed).toEqual([]);
    expect(merged.manifest.kernels.map((k) => k.name)).toContain('rms_norm_f16');
    expect(merged.manifest.kernels.map((k) => k.name)).toContain('kv_append_bf16_hd256_ps8');
    const replaced = generate({ outDir: dir, project, families: ['rms_norm'] });
    expect(replaced.removed).toContain('cuda/kv_append_f16_hd64_ps16.cuh');
    expect(replaced.removed).toContain('ts/kv-append.ts');
  });

  it('rejects shapes a kernel cannot take, with the reason', () => {
    expect(() => generate({ outDir: tempDir('bad'), project, families: ['kv_append'], matrix: { ...DEFAULT_MATRIX, headDim: [80] } })).toThrow(
      /kv_append_f16_hd80_ps16: head dim 80 must be a multiple of 32/,
    );
    expect(() => generate({ outDir: tempDir('bad'), project, families: ['paged_decode'], matrix: { ...DEFAULT_MATRIX, headDim: [96] } })).toThrow(
      /paged_decode_f16_hd96_ps16_g1: head dim 96 must be a power of two/,
    );
  });
});
