// Self-test checks of error messages: each names the call, the operation and the
// CUDA (or cuBLAS) error; none of them leaves the device unusable.
import { check, throwsMatching } from './util.mjs';

const COMPUTE = 0;

export const errorChecks = [
  {
    name: 'error messages',
    run({ addon, kernels }) {
      const ptr = addon.alloc(1024, 'a block to free twice');
      addon.free(ptr);
      throwsMatching(() => addon.free(ptr), /^free: 0x[0-9a-f]+ was already freed \(double free\)$/, 'double free');
      throwsMatching(() => addon.free(0x1234n), /^free: 0x1234 was not returned by alloc$/, 'free of a bad pointer');
      const inner = addon.alloc(4096, 'a block freed from the middle');
      throwsMatching(() => addon.free(inner + 256n), /^free: 0x[0-9a-f]+ points inside an allocation/, 'free of an interior pointer');
      addon.free(inner);

      throwsMatching(
        () => addon.launch('paged_decode_f16_hd96_ps16_g1', [1, 1, 1], new Uint8Array(64), COMPUTE),
        /^launch: no kernel named 'paged_decode_f16_hd96_ps16_g1' in this build/,
        'launch of an unknown kernel',
      );
      const k = kernels.residualAdd;
      throwsMatching(
        () => addon.launch(k.name, [1, 1, 1], new Uint8Array(k.paramBytes - 8), COMPUTE),
        new RegExp(`^launch: ${k.name} takes ${k.paramBytes} bytes of parameters, got ${k.paramBytes - 8}$`),
        'launch with the wrong parameter size',
      );

      const before = addon.allocatorStats();
      const oom = throwsMatching(
        () => addon.alloc(2 ** 50, 'an absurd request'),
        /^out of device memory allocating 1\.00 PiB for an absurd request: [\d.]+ [KMGT]iB free of [\d.]+ GiB \(cached by the allocator: [\d.]+ (B|[KMGT]iB)\)$/,
        'an absurd allocation',
      );
      check(addon.allocatorStats().allocatedBytes === before.allocatedBytes, 'a failed alloc changed allocatedBytes');

      // A CUDA call that fails at once and leaves no sticky error behind.
      const cudaMessage = throwsMatching(
        () => addon.endCapture(COMPUTE),
        /^cudaStreamEndCapture failed in endCapture \(stream 0\): .+/,
        'endCapture without beginCapture',
      );

      const m = addon.alloc(8 * 8 * 4, 'gemm with a bad leading dimension');
      const blas = addon.blasStatus();
      let gemmMessage = 'cuBLAS not loaded';
      if (blas.loaded) {
        gemmMessage = throwsMatching(
          () =>
            addon.gemm({
              transA: false,
              transB: false,
              m: 8,
              n: 8,
              k: 8,
              a: m,
              aType: 'f32',
              lda: 4,
              b: m,
              bType: 'f32',
              ldb: 8,
              c: m,
              cType: 'f32',
              ldc: 8,
              alpha: 1,
              beta: 0,
              stream: COMPUTE,
              what: 'a product with lda < m',
            }),
          /^cublasGemmEx failed in a product with lda < m: CUBLAS_STATUS_INVALID_VALUE \(m=8, n=8, k=8\)$/,
          'gemm with lda < m',
        );
      }
      // After all of that the device still works.
      addon.memset(m, 7, 256, COMPUTE, 'after the errors');
      const back = new Uint8Array(256);
      addon.download(m, back, COMPUTE, 'after the errors');
      check(
        back.every((b) => b === 7),
        'the device misbehaves after the error checks',
      );
      addon.free(m);
      return `e.g. "${oom}"; "${cudaMessage}"; "${gemmMessage}"`;
    },
  },
];
