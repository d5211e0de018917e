import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './load.js';
import { ncclStatus, ncclWheelLibrary } from './nccl.js';
import type { CudaAddon, NcclStatus } from './native.js';
import { addonBuilt } from './test-support/build-state.js';

const addonPath = fileURLToPath(new URL('../build/Release/arkvale_cuda.node', import.meta.url));
const skip = !addonBuilt && process.env.ARKVALE_SKIP_NVCC === '1';

/** The addon's ncclStatus in a fresh process (it loads NCCL once per process), with ARKVALE_NCCL set as given. */
function statusIn(env: { ARKVALE_NCCL?: string }, wheelLibrary?: string): NcclStatus {
  const script = `const a = require(${JSON.stringify(addonPath)}); process.stdout.write(JSON.stringify(a.ncclStatus(${wheelLibrary ? JSON.stringify(wheelLibrary) : ''})));`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ARKVALE_NCCL: env.ARKVALE_NCCL ?? '' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as NcclStatus;
}

/** A stand-in libnccl built here: ncclGetVersion gives 22703 (2.27.3); `omit` leaves one entry point out. */
function fakeNccl(dir: string, omit?: string): string {
  const names = ['ncclGetUniqueId', 'ncclCommInitRank', 'ncclAllReduce', 'ncclAllGather', 'ncclCommDestroy', 'ncclGetErrorString'].filter((n) => n !== omit);
  const source = join(dir, `fake-${omit ?? 'whole'}.c`);
  writeFileSync(source, `int ncclGetVersion(int* v) { *v = 22703; return 0; }\n${names.map((n) => `int ${n}(void) { return 0; }`).join('\n')}\n`);
  const lib = join(dir, `libnccl-${omit ?? 'whole'}.so`);
  execFileSync('cc', ['-shared', '-fPIC', '-o', lib, source]);
  return lib;
}

describe.skipIf(skip)('NCCL, loaded at run time', () => {
  it('says which files it tried when there is none', () => {
    const s = statusIn({});
    if (s.loaded) return; // a machine with NCCL on its library path
    expect(s.reason).toMatch(/^libnccl\.so\.2 not found \(dlopen: .+\); tried libnccl\.so\.2, libnccl\.so$/);
    const missing = statusIn({ ARKVALE_NCCL: '/nowhere/libnccl.so.2' });
    expect(missing.reason).toMatch(/^\/nowhere\/libnccl\.so\.2 not found \(dlopen: .+\); tried \/nowhere\/libnccl\.so\.2, libnccl\.so\.2, libnccl\.so$/);
  });

  it('loads a library with NCCL entry points from ARKVALE_NCCL or the wheel, and refuses one without them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'arkvale-nccl-'));
    const whole = fakeNccl(dir);
    expect(statusIn({ ARKVALE_NCCL: whole })).toEqual({ loaded: true, library: whole, version: 22703 });
    // The wheel's library when ARKVALE_NCCL is not set; ARKVALE_NCCL first when it is.
    expect(statusIn({}, whole)).toEqual({ loaded: true, library: whole, version: 22703 });
    expect(statusIn({ ARKVALE_NCCL: '/nowhere/libnccl.so.2' }, whole)).toEqual({ loaded: true, library: whole, version: 22703 });
    const old = fakeNccl(dir, 'ncclCommInitRank');
    expect(statusIn({ ARKVALE_NCCL: old })).toEqual({ loaded: false, reason: `${old} has no ncclCommInitRank (too old an NCCL)` });
  });

  it("finds the nvidia-nccl wheel's library through Python, and nothing without Python or the file", () => {
    const dir = mkdtempSync(join(tmpdir(), 'arkvale-nccl-wheel-'));
    const lib = fakeNccl(dir);
    // A stand-in for python3 that prints where the wheel's library is.
    const python = (printed: string) => {
      const path = join(dir, `python-${printed.length}`);
      writeFileSync(path, `#!/bin/sh\necho ${printed}\n`, { mode: 0o755 });
      return path;
    };
    expect(ncclWheelLibrary(python(lib))).toBe(lib);
    expect(ncclWheelLibrary(python(join(dir, 'missing.so')))).toBeUndefined();
    expect(ncclWheelLibrary(join(dir, 'no-python'))).toBeUndefined();
  });

  it("the communicator's entry points: an id from the library, then refusals that name what is missing (no GPU here)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'arkvale-nccl-comm-'));
    const whole = fakeNccl(dir);
    // Each line's outcome in a fresh process: its value, or its error's message.
    const outcomes = (env: { ARKVALE_NCCL?: string }, lines: readonly string[]) => {
      const script = `const a = require(${JSON.stringify(addonPath)}); const out = [];
        for (const line of ${JSON.stringify(lines)}) { try { const v = eval(line); out.push(v instanceof Uint8Array ? 'bytes ' + v.length : String(v)); } catch (e) { out.push(e.message); } }
        process.stdout.write(JSON.stringify(out));`;
      const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ARKVALE_NCCL: env.ARKVALE_NCCL ?? '' }, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout) as string[];
    };
    expect(
      outcomes({ ARKVALE_NCCL: whole }, [
        'a.ncclUniqueId()',
        'a.ncclCommInit(a.ncclUniqueId(), 2, 0)',
        'a.ncclCommInit(new Uint8Array(5), 2, 0)',
        'a.ncclCommInit(a.ncclUniqueId(), 2, 2)',
        "a.ncclAllReduce(7, 1n, 2n, 4, 'f16', 'a test')",
      ]),
    ).toEqual([
      'bytes 128',
      'ncclCommInit: CUDA is not initialised; call init(device, stagingBytes) first',
      'ncclCommInit: id must be the 128 bytes of ncclUniqueId, got 5',
      expect.stringMatching(/^ncclCommInit: rank must be .*1/),
      'ncclAllReduce: no communicator 7',
    ]);
    const none = outcomes({ ARKVALE_NCCL: '/nowhere/libnccl.so.2' }, ['a.ncclUniqueId()']);
    if (!statusIn({}).loaded) expect(none[0]).toMatch(/^ncclUniqueId: NCCL is not available: \/nowhere\/libnccl\.so\.2 not found/);
  });

  it('ncclStatus says when the addon predates the loader', () => {
    const addon = loadAddon().addon as CudaAddon;
    expect(ncclStatus({ ...addon, ncclStatus: undefined }, undefined)).toEqual({
      loaded: false,
      reason: 'this build of the addon cannot load NCCL (rebuild @arkvale/cuda-binding)',
    });
  });
});
