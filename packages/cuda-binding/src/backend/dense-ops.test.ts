import { describe, expect, it } from 'vitest';
import { STREAM } from '../native.js';
import { fakeDevice } from '../test-support/fake-device.js';
import type { CudaDevice } from './device.js';
import { matmul } from './dense-ops.js';

const c = STREAM.compute;
const input = (d: CudaDevice, shape: number[], dtype: 'f16' | 'f32' = 'f16') => d.lifetimes.untracked(() => d.empty(shape, dtype, 'test input'));

describe('matmul on the CUDA backend', () => {
  it('runs cuBLAS while the skinny-GEMM switch is off', () => {
    const { d, launches } = fakeDevice();
    const out = matmul(d, input(d, [64, 4096]), input(d, [4096, 4096]));
    expect(launches).toEqual([`gemm 4096 x 64 x 4096 f16 -> f16 on ${c}`]);
    expect(out.shape).toEqual([64, 4096]);
  });

  it('with it on, splits k by (n, k) alone, whatever the rows, reduces the partials and frees their workspace', () => {
    const { d, launches } = fakeDevice({ on: true });
    const w = input(d, [4096, 4096]);
    const before = d.lifetimes.liveTensors;
    for (const m of [1, 3, 64]) {
      const out = matmul(d, input(d, [m, 4096]), w);
      expect(out.shape).toEqual([m, 4096]);
    }
    // 32 blocks of 128 features x 8 splits of 512 k; the reduce sums 4 elements a thread.
    expect(launches).toEqual([
      `skinny_gemm_f16_to_f16 [32, 8, 1] on ${c}`,
      `skinny_gemm_reduce_f16 [4, 1, 1] on ${c}`,
      `skinny_gemm_f16_to_f16 [32, 8, 1] on ${c}`,
      `skinny_gemm_reduce_f16 [12, 1, 1] on ${c}`,
      `skinny_gemm_f16_to_f16 [32, 8, 1] on ${c}`,
      `skinny_gemm_reduce_f16 [256, 1, 1] on ${c}`,
    ]);
    // The three outputs, not the partials.
    expect(d.lifetimes.liveTensors - before).toBe(3);
  });

  it('writes f32 logits in one launch where the features fill the GPU (lm head), and sizes Llama-2-7B products', () => {
    const { d, launches } = fakeDevice({ on: true });
    matmul(d, input(d, [64, 4096]), input(d, [32000, 4096]), 'f32');
    matmul(d, input(d, [4, 4096]), input(d, [12288, 4096]));
    matmul(d, input(d, [4, 11008]), input(d, [4096, 11008]));
    expect(launches).toEqual([
      `skinny_gemm_f16_to_f32 [250, 1, 1] on ${c}`,
      `skinny_gemm_f16_to_f16 [96, 4, 1] on ${c}`,
      `skinny_gemm_reduce_f16 [48, 1, 1] on ${c}`,
      `skinny_gemm_f16_to_f16 [32, 8, 1] on ${c}`,
      `skinny_gemm_reduce_f16 [16, 1, 1] on ${c}`,
    ]);
  });

  it('takes the split target from its options', () => {
    const { d, launches } = fakeDevice({ on: true, targetBlocks: 128 });
    matmul(d, input(d, [64, 4096]), input(d, [4096, 4096]));
    expect(launches[0]).toBe(`skinny_gemm_f16_to_f16 [32, 4, 1] on ${c}`);
  });

  it('leaves to cuBLAS what skinny_gemm does not take: over 64 rows, n or k not multiples of 64, f32 operands, unaligned rows', () => {
    const { d, launches } = fakeDevice({ on: true });
    matmul(d, input(d, [65, 4096]), input(d, [4096, 4096]));
    matmul(d, input(d, [4, 4096]), input(d, [4000, 4096]));
    matmul(d, input(d, [4, 4104]), input(d, [4096, 4104]));
    matmul(d, input(d, [4, 256], 'f32'), input(d, [256, 256], 'f32'));
    const x = input(d, [5, 256]);
    matmul(d, d.view(x, 8, [4, 256]), input(d, [256, 256]));
    expect(launches).toEqual([
      `gemm 4096 x 65 x 4096 f16 -> f16 on ${c}`,
      `gemm 4000 x 4 x 4096 f16 -> f16 on ${c}`,
      `gemm 4096 x 4 x 4104 f16 -> f16 on ${c}`,
      `gemm 256 x 4 x 256 f32 -> f16 on ${c}`,
      `gemm 256 x 4 x 256 f16 -> f16 on ${c}`,
    ]);
  });

  it('with the gemv switch on, runs 1 row through the one-row gemv and 2 to 4 through the four-row one, a warp per feature', () => {
    const { d, launches } = fakeDevice({ on: true }, true);
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

  it('leaves to skinny_gemm or cuBLAS what gemv does not take: over 4 rows, k not a multiple of 8, f32 operands, unaligned rows', () => {
    const { d, launches } = fakeDevice({ on: false }, true);
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
});
