import { describe, expect, it } from 'vitest';
import { pageBytes, ReferenceBackend, type Backend } from '@arkvale/core';
import { activationBytes, checkCacheFits, devicePageCapacity, digestBytes, kvDeviceBytes } from './device-memory.js';
import { kvGeometry } from './model-dir.js';
import { shapeConfig } from './shapes.js';

const GIB = 1024 ** 3;
const config = shapeConfig('llama2-7b');
const g = kvGeometry(config, 32, 2);

/** A backend reporting `free` of 80 GiB of device memory. */
function gpu(free: number): Backend {
  const b = new ReferenceBackend() as unknown as { memory: () => { freeBytes: number; totalBytes: number } };
  b.memory = () => ({ freeBytes: free, totalBytes: 80 * GIB });
  return b as unknown as Backend;
}

describe('device memory planning', () => {
  it('counts a page and its digest by hand (7B shape, pages of 32 tokens, f16)', () => {
    // K and V: 2 x 32 tokens x 32 heads x 128 dims x 2 bytes; a digest: per head a max and a min key of 128 dims.
    expect(pageBytes(g)).toBe(524_288);
    expect(digestBytes(g)).toBe(16_384);
    expect(kvDeviceBytes(g, 10, 40)).toBe(10 * 524_288 + 50 * 16_384);
  });

  it('fits the most device pages whose pools, digests of their host pages included, and the largest pass fit', () => {
    const backend = gpu(60 * GIB);
    const hostFor = (d: number) => Math.min(4 * d, 100_000);
    const rows = 32_768;
    const pages = devicePageCapacity(backend, config, g, 0.9, rows, hostFor)!;
    const room = 60 * GIB - 8 * GIB - activationBytes(config, rows, 1, 2);
    expect(kvDeviceBytes(g, pages, hostFor(pages))).toBeLessThanOrEqual(room);
    expect(kvDeviceBytes(g, pages + 1, hostFor(pages + 1))).toBeGreaterThan(room);
    // Without host pages (their 4x reach the 100k cap), the count is larger by their digests' bytes over a page with its digest.
    const alone = devicePageCapacity(backend, config, g, 0.9, rows)!;
    expect(Math.abs(alone - pages - (100_000 * digestBytes(g)) / (pageBytes(g) + digestBytes(g)))).toBeLessThanOrEqual(1);
    // What the plan gives, the cache check accepts; one page more it refuses.
    const options = (d: number) => ({ devicePages: d, hostPages: hostFor(d) }) as Parameters<typeof checkCacheFits>[3];
    expect(() => checkCacheFits(backend, config, g, options(pages), rows, 0.9)).not.toThrow();
    expect(() => checkCacheFits(backend, config, g, options(pages + 1), rows, 0.9)).toThrow(/OUT_OF_MEMORY|the KV cache needs/);
    // A whole-prompt pass leaves fewer pages than a step of 512 rows.
    expect(devicePageCapacity(backend, config, g, 0.9, 512, hostFor)!).toBeGreaterThan(pages);
    expect(devicePageCapacity(new ReferenceBackend(), config, g, 0.9, rows)).toBeUndefined();
  });

  it('plans fp8 pages at their own size: codes and scale bytes, digests still in the activation dtype', () => {
    const g8 = kvGeometry(config, 32, 2, 'fp8');
    // 2 x 32 tokens x 32 heads x (128 codes + 1 scale byte); digests as for f16 pages.
    expect(pageBytes(g8)).toBe(2 * 32 * 32 * 129);
    expect(digestBytes(g8)).toBe(digestBytes(g));
    expect(kvDeviceBytes(g8, 10, 40)).toBe(10 * 264_192 + 50 * 16_384);
    const backend = gpu(60 * GIB);
    const f16 = devicePageCapacity(backend, config, g, 0.9, 512)!;
    const fp8 = devicePageCapacity(backend, config, g8, 0.9, 512)!;
    // About twice the pages (a page with its digest: 264,192 + 16,384 bytes against 524,288 + 16,384).
    expect(Math.abs(fp8 - (f16 * (524_288 + 16_384)) / (264_192 + 16_384))).toBeLessThanOrEqual(2);
    expect(fp8 / f16).toBeGreaterThan(1.9);
    const options = { devicePages: fp8, hostPages: 0 } as Parameters<typeof checkCacheFits>[3];
    expect(() => checkCacheFits(backend, config, g8, options, 512, 0.9)).not.toThrow();
    expect(() => checkCacheFits(backend, config, g8, { ...options, devicePages: fp8 + 1 }, 512, 0.9)).toThrow(/the KV cache needs/);
  });
});
