/**
 * Runs every kernel family on the GPU (when this machine has one and nvcc) and checks
 * it against the emulator on the same inputs; the emulator is itself checked against
 * core's reference backend. Launches go through the generated registry with
 * parameter buffers packed from the manifest, as a binding would launch them.
 * Skipped without a GPU; ARKVALE_GPU=1 makes a missing GPU a failure instead.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nvccVersion } from '../nvcc/nvcc.js';
import { prepareGpuCheck, verifyGpuCheck } from './check.js';
import { tempDir } from '../test-support/temp-dir.js';

const gpu = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
const hasGpu = gpu.status === 0 && /GPU \d/.test(gpu.stdout) && nvccVersion() !== undefined;
const required = process.env.ARKVALE_GPU === '1';

describe.skipIf(!hasGpu && !required)('kernels on the GPU match the emulator', () => {
  it('finds a GPU and nvcc', () => {
    expect(hasGpu, 'ARKVALE_GPU=1 but nvidia-smi -L lists no GPU or nvcc is missing').toBe(true);
  });

  it.skipIf(!hasGpu)('runs every kernel family', { timeout: 900_000 }, async () => {
    const dir = tempDir('gpu-check');
    await prepareGpuCheck(dir);
    const out = path.join(dir, 'out');
    mkdirSync(out);
    const run = spawnSync(path.join(dir, 'harness'), [dir, out], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    console.log(`[gpu] ${run.stdout.trim().split('\n').join('; ')}`);
    expect(verifyGpuCheck(dir, out)).toEqual([]);
  });
});
