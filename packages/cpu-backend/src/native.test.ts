import { ConfigError, ReferenceBackend } from '@arkvale/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CpuBackend } from './cpu-backend.js';
import { cpuBackendInfo, createCpuBackend } from './info.js';
import { loadNative, simdFromEnv, threadsFromEnv } from './native.js';
import { randomArray, rng } from './test-support/random.js';

describe('native addon', () => {
  // CI must not pass silently on the reference fallback: a missing or broken
  // addon fails here unless ARKVALE_ALLOW_NO_NATIVE=1 says that is intended.
  it.skipIf(process.env.ARKVALE_ALLOW_NO_NATIVE === '1')('is loaded (set ARKVALE_ALLOW_NO_NATIVE=1 to accept the fallback)', () => {
    const info = cpuBackendInfo();
    expect(info.reason).toBeUndefined();
    expect(info.native).toBe(true);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(['avx2-fma', 'generic']).toContain(info.simd);
    expect(createCpuBackend().native).toBe(true);
  });

  it('names the backend and keeps the reference operations', () => {
    const backend = createCpuBackend();
    expect(backend).toBeInstanceOf(CpuBackend);
    expect(backend).toBeInstanceOf(ReferenceBackend);
    expect(backend.name).toBe('cpu');
    const sum = backend.add(backend.fromArray([1, 2], [2]), backend.fromArray([3, 4], [2]));
    expect(Array.from(backend.readSync(sum))).toEqual([4, 6]);
  });

  it('gives the same results on any number of threads', () => {
    const addon = loadNative().addon;
    if (!addon) return;
    const backend = createCpuBackend();
    const next = rng(3);
    const x = backend.fromArray(randomArray(next, 150 * 96), [150, 96]);
    const w = backend.fromArray(randomArray(next, 70 * 96), [70, 96]);
    const [q, k, v] = [4, 2, 2].map((h) => backend.fromArray(randomArray(next, 120 * h * 16), [120, h, 16]));
    const run = () => [backend.matmul(x, w), backend.causalAttention({ q, k, v, scale: 0.25, keyScores: 'sum' }).keyScores!].map((t) => backend.readSync(t));
    const initial = addon.threads();
    try {
      addon.setThreads(1);
      const single = run();
      addon.setThreads(3);
      expect(run()).toEqual(single);
    } finally {
      addon.setThreads(initial);
    }
  });
});

describe('fallback to the reference code', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('runs every operation on the reference code when asked to', () => {
    const backend = new CpuBackend({ useNative: false });
    expect(backend.native).toBe(false);
    const next = rng(11);
    const x = backend.fromArray(randomArray(next, 12), [3, 4]);
    const w = backend.fromArray(randomArray(next, 8), [2, 4]);
    expect(backend.readSync(backend.matmul(x, w))).toEqual(new ReferenceBackend().readSync(new ReferenceBackend().matmul(x, w)));
  });

  it('says why when the addon cannot be loaded, and still works', async () => {
    vi.stubEnv('ARKVALE_CPU_ADDON', '/nonexistent/arkvale_cpu.node');
    const fresh = await import('./index.js');
    expect(fresh.cpuBackendInfo()).toEqual({
      native: false,
      threads: 1,
      reason: 'ARKVALE_CPU_ADDON=/nonexistent/arkvale_cpu.node does not exist',
    });
    const backend = fresh.createCpuBackend();
    expect(backend.native).toBe(false);
    const out = backend.matmul(backend.fromArray([1, 2], [1, 2]), backend.fromArray([3, 4], [1, 2]));
    expect(Array.from(backend.readSync(out))).toEqual([11]);
  });
});

describe('environment settings', () => {
  it('reads ARKVALE_CPU_THREADS as a positive integer and rejects anything else', () => {
    expect(threadsFromEnv(undefined)).toBeUndefined();
    expect(threadsFromEnv('')).toBeUndefined();
    expect(threadsFromEnv('3')).toBe(3);
    for (const bad of ['0', '-1', '2.5', 'many', '257']) {
      expect(() => threadsFromEnv(bad)).toThrow(ConfigError);
    }
    expect(() => threadsFromEnv('many')).toThrow("ARKVALE_CPU_THREADS must be an integer from 1 to 256, got 'many'");
  });

  it('reads ARKVALE_CPU_SIMD as auto or generic', () => {
    expect(simdFromEnv(undefined)).toBe('auto');
    expect(simdFromEnv('generic')).toBe('generic');
    expect(() => simdFromEnv('avx512')).toThrow("ARKVALE_CPU_SIMD must be 'auto' or 'generic', got 'avx512'");
  });
});
