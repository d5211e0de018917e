import { describe, expect, it } from 'vitest';
import { STREAM } from '../native.js';
import { fakeDevice } from '../test-support/fake-device.js';
import type { CudaDevice } from './device.js';
import { matmul } from './dense-ops.js';

const c = STREAM.compute;
const input = (d: CudaDevice, shape: number[], dtype: 'f16' | 'f32' = 'f16') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));

describe('matmul on the CUDA backend', () => {
  it('runs cuBLAS while every product kernel is off', () => {
    const { d, launches } = fakeDevice();
    const out = matmul(d, input(d, [64, 4096]), input(d, [4096, 4096]));
    expect(launches).toEqual([`gemm 4096 x 64 x 4096 f16 -> f16 on ${c}`]);
    expect(out.shape).toEqual([64, 4096]);
  });

  it('with the gemv switch on, runs 1 row through the one-row gemv and 2 to 4 through the four-row one, a warp per feature', () => {
    const { d, launches } = fakeDevice({ gemv: true });
    const w = input(d, [4096, 4096]);
    for (const m of [1, 2, 4]) expect(matmul(d, input(d, [m, 4096]), w).shape).toEqual([m, 4096]);
    matmul(d, input(d, [1, 4096]), input(d, [128256, 4096]), 'f32');
    // 8 features a block of 256 threads.
    expect(launches).toEqual([
      `gemv_f16_to_f16_r1 [512, 1, 1] on ${c}`,
      `gemv_f16_to_f16_r4 [512, 1, 1] on ${c}`,
      `gemv_f16_to_f16_r4 [512, 1, 1] on ${c}`,
      `gemv_f16_to_f32_r1 [16032, 1, 1] on ${c}`,
    ]);
  });

  it('leaves to cuBLAS what gemv does not take: over 4 rows, k not a multiple of 8, f32 operands, unaligned rows', () => {
    const { d, launches } = fakeDevice({ gemv: true });
    matmul(d, input(d, [5, 4096]), input(d, [4096, 4096]));
    matmul(d, input(d, [1, 4100]), input(d, [4096, 4100]));
    matmul(d, input(d, [1, 256], 'f32'), input(d, [256, 256], 'f32'));
    const x = input(d, [5, 256]);
    matmul(d, d.view(x, 8, [1, 256]), input(d, [256, 256]));
    expect(launches).toEqual([
      `gemm 4096 x 5 x 4096 f16 -> f16 on ${c}`,
      `gemm 4096 x 1 x 4100 f16 -> f16 on ${c}`,
      `gemm 256 x 1 x 256 f32 -> f16 on ${c}`,
      `gemm 256 x 1 x 256 f16 -> f16 on ${c}`,
    ]);
  });

  it('with the stream_gemm switch on, takes the fewest m-tiles that hold the rows, and 8 features a block up to 16 rows and 32 beyond', () => {
    const { d, launches } = fakeDevice({ streamGemm: true });
    const w = input(d, [4096, 4096]);
    for (const m of [1, 16, 17, 33, 64]) expect(matmul(d, input(d, [m, 4096]), w).shape).toEqual([m, 4096]);
    matmul(d, input(d, [4, 4096]), input(d, [128256, 4096]), 'f32');
    expect(launches).toEqual([
      `stream_gemm_f16_to_f16_m1_n1 [512, 1, 1] on ${c}`,
      `stream_gemm_f16_to_f16_m1_n1 [512, 1, 1] on ${c}`,
      `stream_gemm_f16_to_f16_m2_n4 [128, 1, 1] on ${c}`,
      `stream_gemm_f16_to_f16_m4_n4 [128, 1, 1] on ${c}`,
      `stream_gemm_f16_to_f16_m4_n4 [128, 1, 1] on ${c}`,
      `stream_gemm_f16_to_f32_m1_n1 [16032, 1, 1] on ${c}`,
    ]);
  });

  it('leaves to gemv or cuBLAS what stream_gemm does not take, gemv taking up to 4 rows first', () => {
    const { d, launches } = fakeDevice({ streamGemm: true, gemv: true });
    matmul(d, input(d, [4, 4096]), input(d, [4096, 4096]));
    matmul(d, input(d, [5, 4096]), input(d, [4000, 4096]));
    matmul(d, input(d, [65, 4096]), input(d, [4096, 4096]));
    matmul(d, input(d, [5, 4112]), input(d, [4096, 4112]));
    matmul(d, input(d, [5, 256], 'f32'), input(d, [256, 256], 'f32'));
    const x = input(d, [6, 256]);
    matmul(d, d.view(x, 8, [5, 256]), input(d, [256, 256]));
    expect(launches).toEqual([
      `gemv_f16_to_f16_r4 [512, 1, 1] on ${c}`,
      `stream_gemm_f16_to_f16_m1_n1 [500, 1, 1] on ${c}`,
      `gemm 4096 x 65 x 4096 f16 -> f16 on ${c}`,
      `gemm 4096 x 5 x 4112 f16 -> f16 on ${c}`,
      `gemm 256 x 5 x 256 f32 -> f16 on ${c}`,
      `gemm 256 x 5 x 256 f16 -> f16 on ${c}`,
    ]);
  });
});
