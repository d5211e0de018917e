/**
 * Rotary position embedding, "rotate half" (Backend.rope, core's dense.rope):
 * (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) for dims e and e + headDim/2, with
 * cos/sin from a table [maxPositions, headDim/2] (f32). Every scaling the model package
 * supports (linear, llama3) lives in the inverse frequencies and the attention factor,
 * so rope_table builds the table on the device from them.
 */
import { blockDim, blockIdx, convert, f32, i64, threadIdx, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { add, arg, ceilDiv, mul } from '../spec/geometry.js';
import { product, type DType, type Matrix } from '../spec/matrix.js';
import { checkHeadDim } from './layout.js';

const THREADS = 128;

export interface RopeKernelSpec {
  readonly dtype: DType;
  readonly headDim: number;
}

/**
 * Rotates pair `e` (dims e and e + half) of the head at x[src..] into out[dst..] at
 * position p; rope and rope_qkv share it, so both give a head the same bits. A position
 * outside the table (a host bug) passes x through unrotated.
 */
function rotatePair<T extends Float16>(
  spec: RopeKernelSpec,
  x: GlobalIn<T>,
  src: i64,
  cos: GlobalIn<f32>,
  sin: GlobalIn<f32>,
  out: Global<T>,
  dst: i64,
  p: i32,
  e: i32,
  maxPositions: i32,
): void {
  const half = spec.headDim / 2;
  const inTable = p >= 0 && p < maxPositions;
  const x1 = f32(x[src + e]);
  const x2 = f32(x[src + e + half]);
  const c = inTable ? cos[p * half + e] : 1;
  const s = inTable ? sin[p * half + e] : 0;
  out[dst + e] = convert<T>(x1 * c - x2 * s);
  out[dst + e + half] = convert<T>(x2 * c + x1 * s);
}

export function rope<T extends Float16>(
  spec: RopeKernelSpec,
  x: GlobalIn<T>,
  positions: GlobalIn<i32>,
  cos: GlobalIn<f32>,
  sin: GlobalIn<f32>,
  out: Global<T>,
  numTokens: i32,
  numHeads: i32,
  maxPositions: i32,
): void {
  const half = spec.headDim / 2;
  const t = blockIdx.x;
  // One (head, dim) pair per thread, blockIdx.y picking the block of pairs: a decode step
  // has a handful of tokens, and one block per token looping over its 32 x 64 pairs
  // waited on 16 iterations' loads one after another.
  const i = blockIdx.y * THREADS + threadIdx.x;
  if (t >= numTokens || i >= numHeads * half) return;
  const base = i64(t * numHeads + i / half) * spec.headDim;
  rotatePair(spec, x, base, cos, sin, out, base, positions[t], i % half, maxPositions);
}

/**
 * Backend.ropeQkv: token t's row of qkv [T, (numHeads + 2 numKvHeads) * D], one product
 * with the stacked [q; k; v] weights, goes to q [T, numHeads, D] and k [T, numKvHeads, D]
 * rotated as rope rotates them and to v [T, numKvHeads, D] as it is: with the stacked
 * product, two launches where three products and two ropes were five. One pair of a
 * head per thread.
 */
export function ropeQkv<T extends Float16>(
  spec: RopeKernelSpec,
  qkv: GlobalIn<T>,
  positions: GlobalIn<i32>,
  cos: GlobalIn<f32>,
  sin: GlobalIn<f32>,
  q: Global<T>,
  k: Global<T>,
  v: Global<T>,
  numTokens: i32,
  numHeads: i32,
  numKvHeads: i32,
  maxPositions: i32,
): void {
  const D = spec.headDim;
  const half = D / 2;
  const t = blockIdx.x;
  const i = blockIdx.y * THREADS + threadIdx.x;
  const rowHeads = numHeads + 2 * numKvHeads;
  if (t >= numTokens || i >= rowHeads * half) return;
  const head = i / half;
  const e = i % half;
  const src = i64(t * rowHeads + head) * D;
  if (head < numHeads) {
    rotatePair(spec, qkv, src, cos, sin, q, i64(t * numHeads + head) * D, positions[t], e, maxPositions);
  } else if (head < numHeads + numKvHeads) {
    rotatePair(spec, qkv, src, cos, sin, k, i64(t * numKvHeads + head - numHeads) * D, positions[t], e, maxPositions);
  } else {
    const dst = i64(t * numKvHeads + head - numHeads - numKvHeads) * D;
    v[dst + e] = qkv[src + e];
    v[dst + e + half] = qkv[src + e + half];
  }
}

/** What rope and rope_qkv share: one pair of a head per thread, the same specialisations. */
const common = {
  source: import.meta.url,
  types: (s: RopeKernelSpec) => ({ T: s.dtype }),
  blockThreads: () => THREADS,
  specs: (m: Matrix) => product({ dtype: m.dtype, headDim: m.headDim }),
  validate: (s: RopeKernelSpec) => checkHeadDim(s.headDim),
  unitKey: (s: RopeKernelSpec) => s.dtype,
};

export const ropeKernel = defineKernel<RopeKernelSpec>({
  ...common,
  family: 'rope',
  summary: 'rotate-half RoPE of [T, H, D] at i32 positions from a cos/sin table (Backend.rope)',
  kernel: rope,
  name: (s) => `rope_${s.dtype}_hd${s.headDim}`,
  grid: (s) => [arg('numTokens'), ceilDiv(mul(arg('numHeads'), s.headDim / 2), THREADS), 1],
});

export const ropeQkvKernel = defineKernel<RopeKernelSpec>({
  ...common,
  family: 'rope_qkv',
  summary: 'splits one [q | k | v] product per token into q and k rotated by RoPE and v (Backend.ropeQkv)',
  kernel: ropeQkv,
  name: (s) => `rope_qkv_${s.dtype}_hd${s.headDim}`,
  grid: (s) => [arg('numTokens'), ceilDiv(mul(add(arg('numHeads'), mul(arg('numKvHeads'), 2)), s.headDim / 2), THREADS), 1],
});

/** cos/sin [maxPositions, half] of angle fround(p * invFreq[i]), times the attention factor (Backend.createRopeTable). */
export function ropeTable(_spec: object, invFreq: GlobalIn<f32>, cos: Global<f32>, sin: Global<f32>, maxPositions: i32, half: i32, attentionFactor: f32): void {
  const i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= maxPositions * half) return;
  const angle = f32(i / half) * invFreq[i % half];
  cos[i] = Math.cos(angle) * attentionFactor;
  sin[i] = Math.sin(angle) * attentionFactor;
}

export const ropeTableKernel = defineKernel<Record<string, never>>({
  family: 'rope_table',
  summary: 'builds the RoPE cos/sin table from scaled inverse frequencies (Backend.createRopeTable)',
  source: import.meta.url,
  kernel: ropeTable,
  name: () => 'rope_table',
  blockThreads: () => 256,
  grid: () => [ceilDiv({ op: 'mul', a: arg('maxPositions'), b: arg('half') }, 256), 1, 1],
  specs: () => [{}],
});
