/**
 * RMSNorm (Backend.rmsNorm): out = x / sqrt(mean(x^2) + eps) * weight, one block per
 * row. Rows whose length is a multiple of 8 move in 16-byte vectors.
 */
import { blockDim, blockIdx, convert, f32, i64, local, shared, threadIdx, vload, vstore, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import { blockSum } from './common.js';
import { VEC, type DtypeSpec } from './layout.js';

export function rmsNorm<T extends Float16>(_spec: DtypeSpec, x: GlobalIn<T>, weight: GlobalIn<T>, out: Global<T>, rows: i32, hidden: i32, eps: f32): void {
  const row = blockIdx.x;
  if (row >= rows) return;
  const base = i64(row) * hidden;
  const scratch = shared<f32>(32);
  const xs = local<T>(VEC);
  const ws = local<T>(VEC);
  const vectors = hidden % VEC === 0;
  let ss: f32 = 0;
  if (vectors) {
    for (let i = threadIdx.x * VEC; i < hidden; i += blockDim.x * VEC) {
      vload(xs, x, base + i);
      for (let j = 0; j < VEC; j++) ss += f32(xs[j]) * f32(xs[j]);
    }
  } else {
    for (let i = threadIdx.x; i < hidden; i += blockDim.x) ss += f32(x[base + i]) * f32(x[base + i]);
  }
  const inv = 1 / Math.sqrt(blockSum(ss, scratch) / f32(hidden) + eps);
  if (vectors) {
    for (let i = threadIdx.x * VEC; i < hidden; i += blockDim.x * VEC) {
      vload(xs, x, base + i);
      vload(ws, weight, i);
      for (let j = 0; j < VEC; j++) xs[j] = convert<T>(f32(xs[j]) * inv * f32(ws[j]));
      vstore(out, base + i, xs);
    }
  } else {
    for (let i = threadIdx.x; i < hidden; i += blockDim.x) out[base + i] = convert<T>(f32(x[base + i]) * inv * f32(weight[i]));
  }
}

export const rmsNormKernel = defineKernel<DtypeSpec>({
  family: 'rms_norm',
  summary: 'RMSNorm of each row times the weight (Backend.rmsNorm)',
  source: import.meta.url,
  kernel: rmsNorm,
  name: (s) => `rms_norm_${s.dtype}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => 256,
  grid: () => [arg('rows'), 1, 1],
  specs: (m) => m.dtype.map((dtype) => ({ dtype })),
  unitKey: (s) => s.dtype,
});
