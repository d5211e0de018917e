/**
 * Elementwise kernels over n elements: residual add and the SiLU gate of the LLaMA
 * MLP (also over the halves of one packed product). Each thread moves 16 bytes per
 * operand with one vector access; the tail (n not a multiple of 8) falls back to
 * scalar accesses. Outputs must not alias inputs.
 */
import { blockDim, blockIdx, convert, f32, i64, local, threadIdx, vload, vstore, type Float16, type Global, type GlobalIn, type i32 } from '../dsl/index.js';
import { arg, ceilDiv, mul } from '../spec/geometry.js';
import { defineKernel } from '../spec/define-kernel.js';
import type { DType } from '../spec/matrix.js';

export interface ElementwiseSpec {
  readonly dtype: DType;
}

/** Elements per thread: 16 bytes of a 16-bit type. */
const VEC = 8;
const THREADS = 256;

/** out = a + b (Backend.add). */
export function residualAdd<T extends Float16>(_spec: ElementwiseSpec, a: GlobalIn<T>, b: GlobalIn<T>, out: Global<T>, n: i32): void {
  const i = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
  if (i + VEC <= n) {
    const x = local<T>(VEC);
    const y = local<T>(VEC);
    vload(x, a, i);
    vload(y, b, i);
    for (let k = 0; k < VEC; k++) x[k] = convert<T>(f32(x[k]) + f32(y[k]));
    vstore(out, i, x);
  } else {
    for (let k = i; k < n; k++) out[k] = convert<T>(f32(a[k]) + f32(b[k]));
  }
}

/** silu(g) * u, silu(g) = g / (1 + e^-g): silu_gate and silu_gate_packed give each element these bits. */
function gated(g: f32, u: f32): f32 {
  return (g / (1 + Math.exp(-g))) * u;
}

/** out = silu(gate) * up (Backend.siluGate). */
export function siluGate<T extends Float16>(_spec: ElementwiseSpec, gate: GlobalIn<T>, up: GlobalIn<T>, out: Global<T>, n: i32): void {
  const i = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
  if (i + VEC <= n) {
    const g = local<T>(VEC);
    const u = local<T>(VEC);
    vload(g, gate, i);
    vload(u, up, i);
    for (let k = 0; k < VEC; k++) g[k] = convert<T>(gated(f32(g[k]), f32(u[k])));
    vstore(out, i, g);
  } else {
    for (let k = i; k < n; k++) out[k] = convert<T>(gated(f32(gate[k]), f32(up[k])));
  }
}

/**
 * Backend.siluGatePacked: out [rows, width] = silu(gate) * up from gateUp [rows, 2 width]
 * (gate's columns, then up's: one product with the stacked [gate; up] weights), each
 * element as silu_gate computes it. Rows whose width is a multiple of VEC move in
 * vectors; others element by element.
 */
export function siluGatePacked<T extends Float16>(_spec: ElementwiseSpec, gateUp: GlobalIn<T>, out: Global<T>, rows: i32, width: i32): void {
  const i = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
  const n = rows * width;
  if (i >= n) return;
  if (width % VEC === 0) {
    const src = i64(i / width) * (2 * width) + (i % width);
    const g = local<T>(VEC);
    const u = local<T>(VEC);
    vload(g, gateUp, src);
    vload(u, gateUp, src + width);
    for (let k = 0; k < VEC; k++) g[k] = convert<T>(gated(f32(g[k]), f32(u[k])));
    vstore(out, i, g);
  } else {
    for (let k = i; k < Math.min(i + VEC, n); k++) {
      const src = i64(k / width) * (2 * width) + (k % width);
      out[k] = convert<T>(gated(f32(gateUp[src]), f32(gateUp[src + width])));
    }
  }
}

const common = {
  source: import.meta.url,
  types: (s: ElementwiseSpec) => ({ T: s.dtype }),
  blockThreads: () => THREADS,
  grid: () => [ceilDiv(arg('n'), VEC * THREADS), 1, 1] as const,
  specs: (m: { dtype: readonly DType[] }) => m.dtype.map((dtype) => ({ dtype })),
  unitKey: (s: ElementwiseSpec) => s.dtype,
};

export const residualAddKernel = defineKernel<ElementwiseSpec>({
  ...common,
  family: 'residual_add',
  summary: 'out = a + b elementwise (Backend.add)',
  kernel: residualAdd,
  name: (s) => `residual_add_${s.dtype}`,
});

export const siluGateKernel = defineKernel<ElementwiseSpec>({
  ...common,
  family: 'silu_gate',
  summary: 'out = silu(gate) * up elementwise (Backend.siluGate)',
  kernel: siluGate,
  name: (s) => `silu_gate_${s.dtype}`,
});

export const siluGatePackedKernel = defineKernel<ElementwiseSpec>({
  ...common,
  family: 'silu_gate_packed',
  summary: 'silu(gate) * up from the two column halves of one [gate | up] product (Backend.siluGatePacked)',
  kernel: siluGatePacked,
  name: (s) => `silu_gate_packed_${s.dtype}`,
  grid: () => [ceilDiv(mul(arg('rows'), arg('width')), VEC * THREADS), 1, 1] as const,
});
