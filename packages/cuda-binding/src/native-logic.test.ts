// The addon's bookkeeping (caching allocator, staging-ring placement, page runs,
// byte formatting) needs no GPU: native/tests/native_tests.cc checks it, built
// beside the addon. Without nvcc there is no binary; like the nvcc tests of
// @arkvale/kernels-codegen, that fails unless ARKVALE_SKIP_NVCC=1.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeTestsBinary } from './test-support/build-state.js';

const skip = process.env.ARKVALE_SKIP_NVCC === '1' && !existsSync(nativeTestsBinary);

describe.skipIf(skip)('native bookkeeping', () => {
  it('passes every check of native/tests/native_tests.cc', () => {
    expect(existsSync(nativeTestsBinary), `${nativeTestsBinary} is missing: build the package with nvcc available`).toBe(true);
    const out = execFileSync(nativeTestsBinary, { encoding: 'utf8' });
    const m = /(\d+) of (\d+) native checks passed/.exec(out);
    expect(m, out).not.toBeNull();
    expect(m![1]).toBe(m![2]);
    expect(Number(m![2])).toBeGreaterThan(40);
  });
});
