/**
 * RMSNorm (Backend.rmsNorm): out = x / sqrt(mean(x^2) + eps) * weight, one block per
 * row. Rows whose length is a multiple of 8 move in 16-byte vectors.
 */
import {
  blockDim,
  blockIdx,
  convert,
  f32,
  i64,
  local,
  shared,
  threadIdx,
  vload,
  vstore,
  type Float16,
  type Global,
  type GlobalIn,
  type i32,
} from '../dsl/index.js';
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

/**
 * sum = a + b and out = rmsNorm(sum) in one launch (Backend.addRmsNorm: a residual add
 * and the next norm). The sum is rounded to T before it is normalised and each thread
 * walks its vectors in rms_norm's order with the same block size, so both outputs equal
 * residual_add then rms_norm bit for bit; a decode step saves a launch per norm.
 */
/** 16-byte vectors an add_rms_norm thread keeps in registers: rows up to 256 x 8 x 4 = 8192 wide. */
const KEEP = 4;

export function addRmsNorm<T extends Float16>(
  _spec: DtypeSpec,
  a: GlobalIn<T>,
  b: GlobalIn<T>,
  weight: GlobalIn<T>,
  sum: Global<T>,
  out: Global<T>,
  rows: i32,
  hidden: i32,
  eps: f32,
): void {
  const row = blockIdx.x;
  if (row >= rows) return;
  const base = i64(row) * hidden;
  const scratch = shared<f32>(32);
  const xs = local<T>(VEC);
  const ys = local<T>(VEC);
  const vectors = hidden % VEC === 0;
  // A row of at most KEEP vectors a thread (every decode step's: 4096 or 8192 wide) stays in
  // registers with its weights, loaded before the reduction: no load waits after it. At
  // batch 1 this kernel's 64 launches a step took 4.8 us each on an H100 when the second
  // pass read the sums back.
  const kept = local<T>(VEC * KEEP);
  const weights = local<T>(VEC * KEEP);
  const inRegisters = vectors && hidden <= blockDim.x * VEC * KEEP;
  let ss: f32 = 0;
  if (inRegisters) {
    for (let v = 0; v < KEEP; v++) {
      const i = (threadIdx.x + v * blockDim.x) * VEC;
      if (i < hidden) {
        vload(xs, a, base + i);
        vload(ys, b, base + i);
        for (let j = 0; j < VEC; j++) {
          xs[j] = convert<T>(f32(xs[j]) + f32(ys[j]));
          ss += f32(xs[j]) * f32(xs[j]);
          kept[v * VEC + j] = xs[j];
        }
        vstore(sum, base + i, xs);
        vload(ys, weight, i);
        for (let j = 0; j < VEC; j++) weights[v * VEC + j] = ys[j];
      }
    }
  } else if (vectors) {
    for (let i = threadIdx.x * VEC; i < hidden; i += blockDim.x * VEC) {
      vload(xs, a, base + i);
      vload(ys, b, base + i);
      for (let j = 0; j < VEC; j++) {
        xs[j] = convert<T>(f32(xs[j]) + f32(ys[j]));
        ss += f32(xs[j]) * f32(xs[j]);
      }
      vstore(sum, base + i, xs);
    }
  } else {
    for (let i = threadIdx.x; i < hidden; i += blockDim.x) {
      const s = convert<T>(f32(a[base + i]) + f32(b[base + i]));
      sum[base + i] = s;
      ss += f32(s) * f32(s);
    }
  }
  const inv = 1 / Math.sqrt(blockSum(ss, scratch) / f32(hidden) + eps);
  // Wider rows read back only the sums their thread wrote. This pass repeats rms_norm's
  // rather than sharing a helper with it: a helper's input would be a const __restrict__
  // pointer, which may read through the read-only cache, and `sum` was written by
  // this kernel.
  if (inRegisters) {
    for (let v = 0; v < KEEP; v++) {
      const i = (threadIdx.x + v * blockDim.x) * VEC;
      if (i < hidden) {
        for (let j = 0; j < VEC; j++) xs[j] = convert<T>(f32(kept[v * VEC + j]) * inv * f32(weights[v * VEC + j]));
        vstore(out, base + i, xs);
      }
    }
  } else if (vectors) {
    for (let i = threadIdx.x * VEC; i < hidden; i += blockDim.x * VEC) {
      vload(xs, sum, base + i);
      vload(ys, weight, i);
      for (let j = 0; j < VEC; j++) xs[j] = convert<T>(f32(xs[j]) * inv * f32(ys[j]));
      vstore(out, base + i, xs);
    }
  } else {
    for (let i = threadIdx.x; i < hidden; i += blockDim.x) out[base + i] = convert<T>(f32(sum[base + i]) * inv * f32(weight[i]));
  }
}

export const addRmsNormKernel = defineKernel<DtypeSpec>({
  family: 'add_rms_norm',
  summary: 'sum = a + b and RMSNorm of each row of it times the weight (Backend.addRmsNorm)',
  source: import.meta.url,
  kernel: addRmsNorm,
  name: (s) => `add_rms_norm_${s.dtype}`,
  types: (s) => ({ T: s.dtype }),
  blockThreads: () => 256,
  grid: () => [arg('rows'), 1, 1],
  specs: (m) => m.dtype.map((dtype) => ({ dtype })),
  unitKey: (s) => s.dtype,
});
