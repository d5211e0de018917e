import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArkvaleError } from '@arkvale/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { allKernels } from './generated/index.js';
import { BUILD_HINT, describeLoadFailure, loadAddon } from './load.js';
import { cudaStatus, loadCudaAddon } from './status.js';
import { addonBuilt, buildStatus } from './test-support/build-state.js';

afterEach(() => vi.unstubAllEnvs());

/** A fake build folder: tmp/Release/arkvale_cuda.node (maybe absent) and tmp/status.json. */
function fakeBuild(status: object | undefined, node?: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'arkvale-cuda-'));
  mkdirSync(join(dir, 'Release'));
  if (status) writeFileSync(join(dir, 'status.json'), JSON.stringify(status));
  const addon = join(dir, 'Release', 'arkvale_cuda.node');
  if (node !== undefined) writeFileSync(addon, node);
  return addon;
}

describe('the status on this machine (no GPU)', () => {
  it('loads the addon when the build made one, and says why there is no GPU', () => {
    const status = cudaStatus();
    if (!addonBuilt) {
      // A build without nvcc: the package still loads and says so.
      expect(status.available).toBe(false);
      expect(status.reason).toBe(`addon not built: ${buildStatus?.reason ?? BUILD_HINT}`);
      return;
    }
    const { addon } = loadAddon();
    expect(addon).toBeDefined();
    const probe = addon!.probe();
    expect(status.addon).toMatchObject({ built: true, loaded: true, archs: buildStatus!.archs });
    expect(status.runtimeVersion).toBeGreaterThanOrEqual(12000);
    expect(status.kernels.total).toBe(allKernels.length);
    expect(status.kernels.families.find((f) => f.family === 'paged_decode')?.count).toBe(allKernels.filter((k) => k.family === 'paged_decode').length);
    if (probe.ok) {
      // Run on a GPU machine: whatever the state, it is stated.
      expect(status.available || status.reason.length > 0).toBe(true);
      return;
    }
    expect(probe.reason).toMatch(/^no NVIDIA driver found|^no CUDA device/);
    expect(probe.devices).toEqual([]);
    expect(status.available).toBe(false);
    expect(status.reason).toBe(probe.reason);
    expect(status.summary).toBe(`CUDA unavailable: ${probe.reason}`);
    expect(status.cublas).toBeUndefined(); // not probed without a device
  });

  it('loadCudaAddon throws NO_DEVICE with the reason', () => {
    const status = cudaStatus();
    if (status.available) return; // a GPU machine: nothing to refuse
    let error: unknown;
    try {
      loadCudaAddon();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ArkvaleError);
    expect((error as ArkvaleError).code).toBe('NO_DEVICE');
    expect((error as Error).message).toBe(`CUDA is not available: ${status.reason}`);
  });
});

describe('the status without a usable addon', () => {
  it('names ARKVALE_CUDA_ADDON when it points at a missing file', () => {
    const missing = fakeBuild(undefined);
    const status = cudaStatus({ addonPath: missing });
    expect(status.available).toBe(false);
    expect(status.reason).toBe(`addon not built: ARKVALE_CUDA_ADDON=${missing} does not exist`);
    expect(status.addon).toMatchObject({ built: false, loaded: false, path: missing });
    vi.stubEnv('ARKVALE_CUDA_ADDON', missing);
    expect(cudaStatus().reason).toBe(status.reason);
    expect(() => loadCudaAddon()).toThrow(`CUDA is not available: ${status.reason}`);
  });

  it('says nvcc was missing when build/status.json says so, without loading a stale addon', () => {
    // A leftover file that would fail to load if it were tried.
    const addon = fakeBuild({ built: false, reason: 'nvcc was not found at build time' }, 'a stale addon');
    const status = cudaStatus({ addonPath: addon });
    expect(status.reason).toBe('addon not built: nvcc was not found at build time');
    expect(status.summary).toBe('CUDA unavailable: addon not built: nvcc was not found at build time');
    expect(status.addon).toMatchObject({ built: false, loaded: false });
  });

  it('reports a binary that fails to load, with its message and the build command', () => {
    const broken = fakeBuild(undefined, 'this is not an ELF file');
    const status = cudaStatus({ addonPath: broken });
    expect(status.reason).toMatch(new RegExp(`^ARKVALE_CUDA_ADDON=${broken} failed to load \\(.+\\); rebuild it: ${BUILD_HINT}$`));
  });

  it('words a missing default addon as a build instruction', () => {
    const err = Object.assign(new Error("Cannot find module '../build/Release/arkvale_cuda.node'"), { code: 'MODULE_NOT_FOUND' });
    expect(describeLoadFailure(err, undefined)).toBe('addon not built: run pnpm --filter @arkvale/cuda-binding build');
  });
});
