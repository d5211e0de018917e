import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checkBackendChoice, describeBackend, loadBackend } from './load-backend.js';

/**
 * Runs `body` in a fresh Node process that has imported the built @arkvale/engine, and
 * returns the native addons it loaded (every `process.dlopen`), in order.
 */
function addonsLoaded(body: string): string[] {
  const script = `
    const loaded = [];
    const dlopen = process.dlopen;
    process.dlopen = (module, file, ...rest) => { loaded.push(file); return dlopen.call(process, module, file, ...rest); };
    const engine = await import('@arkvale/engine');
    ${body}
    console.log(JSON.stringify(loaded.map((f) => f.split('/').pop())));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as string[];
}

describe('loadBackend', () => {
  it('loads no native addon on import, nor for the reference backend; the CPU addon only when asked, never the CUDA one', () => {
    expect(addonsLoaded('')).toEqual([]);
    expect(addonsLoaded(`(await engine.loadBackend({ backend: 'reference' })).name;`)).toEqual([]);
    const cpu = addonsLoaded(`await engine.loadBackend({ backend: 'cpu', onWarning: () => {} });`);
    expect(cpu.some((f) => f.includes('arkvale_cpu'))).toBe(true);
    expect(cpu.some((f) => f.includes('arkvale_cuda'))).toBe(false);
  });

  it('names what is wrong: an unknown backend or dtype, no GPU for cuda', async () => {
    expect(() => checkBackendChoice('tpu', undefined)).toThrow('unknown backend "tpu"; expected one of: auto, cuda, cpu, reference');
    await expect(loadBackend({ backend: 'cpu', dtype: 'f8' })).rejects.toThrow('unknown dtype "f8"; expected one of: f16, bf16');
    // This machine has no GPU (CI neither): cuda says why, auto says so and falls back.
    await expect(loadBackend({ backend: 'cuda' })).rejects.toMatchObject({ code: 'NO_DEVICE', message: expect.stringMatching(/^--backend cuda: /) });
    const notes: string[] = [];
    const auto = await loadBackend({ backend: 'auto', dtype: 'bf16', onWarning: (t) => notes.push(t) });
    expect(auto.name).toBe('cpu');
    expect(notes[0]).toMatch(/^note: CUDA unavailable \(.+\); using the CPU backend\n$/);
    expect(notes.at(-1)).toBe('note: --dtype applies to the CUDA backend; the cpu backend computes in f32\n');
    expect(describeBackend(auto)).toBe('cpu');
  });
});
