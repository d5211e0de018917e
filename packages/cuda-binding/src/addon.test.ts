// The real addon on a machine without a GPU: its surface, the kernel registry
// against the launch surface, and the errors it gives before any GPU work.
import { describe, expect, it } from 'vitest';
import { allKernels } from './generated/index.js';
import { loadAddon } from './load.js';
import type { CudaAddon } from './native.js';
import { addonBuilt } from './test-support/build-state.js';

const API = [
  'alloc',
  'allocatorStats',
  'beginCapture',
  'blasStatus',
  'buildInfo',
  'copy',
  'copy2d',
  'copyPages',
  'dependentLaunch',
  'destroyGraph',
  'download',
  'elapsedMs',
  'endCapture',
  'eventDone',
  'free',
  'gemm',
  'gemmTuning',
  'hostAlloc',
  'hostFree',
  'hostView',
  'init',
  'kernels',
  'launch',
  'launchGraph',
  'memInfo',
  'memset',
  'ncclAllGather',
  'ncclAllReduce',
  'ncclCommDestroy',
  'ncclCommInit',
  'ncclStatus',
  'ncclUniqueId',
  'probe',
  'profilerRange',
  'recordEvent',
  'releaseCached',
  'releaseEvent',
  'syncCount',
  'synchronize',
  'synchronizeEvent',
  'upload',
  'waitEvent',
];

// Without nvcc at build time there is no addon (status.test.ts checks how that is
// reported); like the nvcc tests of @arkvale/kernels-codegen, that fails unless
// ARKVALE_SKIP_NVCC=1.
const skip = !addonBuilt && process.env.ARKVALE_SKIP_NVCC === '1';

describe.skipIf(skip)('arkvale_cuda.node without a GPU', () => {
  const load = loadAddon();
  const addon = load.addon as CudaAddon;
  const noGpu = addon !== undefined && !addon.probe().ok;

  it('was built and loads', () => {
    expect(load.reason).toBeUndefined();
    expect(addon).toBeDefined();
  });
  const gemmParams = {
    transA: false,
    transB: true,
    m: 4,
    n: 4,
    k: 4,
    a: 0x1000n,
    aType: 'f16',
    lda: 4,
    b: 0x2000n,
    bType: 'f16',
    ldb: 4,
    c: 0x3000n,
    cType: 'f32',
    ldc: 4,
    alpha: 1,
    beta: 0,
    stream: 0,
    what: 'a test product',
  } as const;

  it('exports exactly the documented functions', () => {
    expect(Object.keys(addon).sort()).toEqual(API);
  });

  it('holds exactly the kernels of the launch surface, with the same block size, parameter bytes and dynamic shared memory', () => {
    const registry = addon
      .kernels()
      .map((k) => `${k.name} ${k.blockThreads} ${k.paramBytes} ${k.dynamicSharedBytes}`)
      .sort();
    const surface = allKernels.map((k) => `${k.name} ${k.block[0]} ${k.paramBytes} ${k.dynamicSharedBytes}`).sort();
    expect(registry).toEqual(surface);
  });

  it('reports its build', () => {
    const info = addon.buildInfo();
    expect(info.archs.at(-1)).toMatch(/^compute_\d+$/);
    expect(info.nvcc).toMatch(/^\d+\.\d+/);
    expect(info.runtimeVersion).toBe(addon.probe().runtimeVersion);
  });

  it.runIf(noGpu)('refuses device work before init, and init says why there is no device', () => {
    expect(() => addon.alloc(1024, 'x')).toThrow('alloc: CUDA is not initialised; call init(device, stagingBytes) first');
    expect(() => addon.upload(0x1000n, new Uint8Array(8), 0, 'weights')).toThrow(/^upload: CUDA is not initialised/);
    expect(() => addon.recordEvent(0)).toThrow(/^recordEvent: CUDA is not initialised/);
    expect(() => addon.profilerRange(true)).toThrow(/^profilerRange: CUDA is not initialised/);
    expect(() => addon.dependentLaunch(true)).toThrow(/^dependentLaunch: CUDA is not initialised/);
    expect(() => addon.hostAlloc(4096, 'host pool')).toThrow(/^hostAlloc: CUDA is not initialised/);
    expect(() => addon.init(0, 1 << 20)).toThrow(/^cudaGetDeviceCount failed in init: .+/);
    expect(addon.syncCount()).toBe(0);
  });

  it('checks argument kinds and values, naming the function and argument', () => {
    expect(() => addon.free(5 as unknown as bigint)).toThrow(new TypeError('free: ptr must be a bigint (a device or pinned host address)'));
    expect(() => addon.free(-1n)).toThrow(RangeError);
    expect(() => addon.free(0x5n)).toThrow('free: 0x5 was not returned by alloc');
    expect(() => addon.alloc(-1, 'x')).toThrow(/^alloc: bytes must be a non-negative integer/);
    expect(() => addon.upload(0x1000n, new Uint8Array(8), 3, 'weights')).toThrow(
      /^upload: stream must be 0 \(compute\), 1 \(device->host\) or 2 \(host->device\)$/,
    );
    expect(() => addon.copyPages(0x1000n, new Uint32Array(2) as unknown as Int32Array, 0x2000n, new Int32Array(2), 64, 0, 'x')).toThrow(
      new TypeError('copyPages: dstSlots must be an Int32Array'),
    );
    expect(() => addon.hostView(0x1000n, 16)).toThrow(RangeError);
    expect(() => addon.eventDone(99)).toThrow('eventDone: event 99 is not a recorded event (never recorded, or released)');
    expect(() => addon.destroyGraph(5)).toThrow('destroyGraph: graph 5 does not exist (destroyed?)');
  });

  it('names the kernel when a launch asks for one that is not built, or packs the wrong size', () => {
    expect(() => addon.launch('paged_decode_f16_hd96_ps16_g1', [1, 1, 1], new Uint8Array(8), 0)).toThrow(
      /^launch: no kernel named 'paged_decode_f16_hd96_ps16_g1' in this build \(\d+ kernels; .*arkvale codegen --merge/,
    );
    const k = allKernels.find((e) => e.name === 'residual_add_f16')!;
    expect(() => addon.launch(k.name, [1, 1, 1], new Uint8Array(k.paramBytes + 4), 0)).toThrow(
      `launch: residual_add_f16 takes ${k.paramBytes} bytes of parameters, got ${k.paramBytes + 4}`,
    );
    expect(() => addon.launch(k.name, [0, 1, 1], new Uint8Array(k.paramBytes), 0)).toThrow(/^launch: grid\[0\] must be an integer from 1/);
  });

  it.runIf(noGpu)('says why cuBLAS is missing, and gemm repeats it', () => {
    const blas = addon.blasStatus();
    if (blas.loaded) return; // a machine with cuBLAS but no GPU
    expect(blas.reason).toMatch(/^libcublas\.so\.13 not found \(dlopen: .+\); tried .*libcublas\.so\.12, libcublas\.so$/);
    expect(() => addon.gemm(gemmParams)).toThrow(`cuBLAS is not available: ${blas.reason}`);
    // A tuned product says the same, and a malformed switch is named.
    expect(() => addon.gemm({ ...gemmParams, tune: true })).toThrow(`cuBLAS is not available: ${blas.reason}`);
    expect(() => addon.gemm({ ...gemmParams, tune: 'yes' as unknown as boolean })).toThrow(new TypeError('gemm: tune must be a boolean'));
    expect(addon.gemmTuning()).toEqual([]);
    expect(() => addon.gemm({ ...gemmParams, aType: 'f64' as 'f16' })).toThrow(new RangeError("gemm: aType must be 'f16', 'bf16' or 'f32', got 'f64'"));
  });

  it('starts with an empty allocator', () => {
    expect(addon.allocatorStats()).toEqual({ reservedBytes: 0, allocatedBytes: 0, slabs: 0, freeBlocks: 0, cudaMallocCalls: 0 });
  });
});
