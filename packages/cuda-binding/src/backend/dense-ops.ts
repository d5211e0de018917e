import type { RopeSpec, RopeTable, Tensor } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import { gemvShapeError, streamGemmShapeError, streamGemmTiles } from '@arkvale/kernels-codegen/launch';
import {
  findAddRmsNorm,
  findEmbeddingGather,
  findFillUniform,
  findGemv,
  findResidualAdd,
  findRmsNorm,
  findRopeQkv,
  findRopeTable,
  findSiluGatePacked,
  findStreamGemm,
} from '../generated/index.js';
import { STREAM } from '../native.js';
import type { CudaDevice } from './device.js';
import type { CudaTensor } from './tensor.js';

/** cos/sin [maxPositions, headDim / 2], f32, built on the device. */
export class CudaRopeTable implements RopeTable {
  constructor(
    readonly headDim: number,
    readonly maxPositions: number,
    readonly cos: CudaTensor,
    readonly sin: CudaTensor,
  ) {}
}

/**
 * The rows of a decode step's products: cuBLAS runs them padded to this many (a row's
 * numbers then depend only on the row, docs/DESIGN.md "Batch invariance"), stream_gemm
 * takes up to this many, and tuning times the shapes of up to this many.
 */
export const DECODE_PRODUCT_ROWS = 64;

/**
 * x [m, k] @ w [n, k]^T through cuBLAS (row-major; cuBLAS is column-major, so this is
 * out^T = w x^T), f32 accumulation, out in the activation dtype or f32. Products of
 * activation-dtype operands whose shape a switched-on kernel takes (d.products) run
 * through it instead: gemv (1 to 4 rows) first, then stream_gemm (up to 64); with
 * d.products.tuned, cuBLAS runs products of up to 64 rows with the algorithm it timed
 * fastest at the shape's first call.
 */
export function matmul(d: CudaDevice, xt: Tensor, wt: Tensor, outDtype?: 'f32'): CudaTensor {
  const x = d.expect(d.tensor(xt, 'matmul x'), 'matmul x', [d.dtype, 'f32'], 2);
  const w = d.expect(d.tensor(wt, 'matmul w'), 'matmul w', [d.dtype, 'f32'], 2);
  const [m, k] = x.shape;
  const [n, kw] = w.shape;
  if (k !== kw) throw invalidArgument(`matmul: x is [${m}, ${k}] but w is [${n}, ${kw}] (inner dimensions differ)`);
  // cuBLAS multiplies operands of one type (f32 accumulation either way).
  if (x.dtype !== w.dtype) throw invalidArgument(`matmul: x is ${x.dtype} but w is ${w.dtype}`);
  const out = d.empty([m, n], outDtype ?? d.dtype, 'matmul output');
  if (m === 0) return out;
  const outType = out.dtype as 'f16' | 'bf16' | 'f32';
  const { gemv, streamGemm } = d.products;
  if (gemv && fits(d, x, w, gemvShapeError)) {
    d.launch(d.kernels.get('gemv', findGemv, { dtype: d.dtype, out: outType, rows: m === 1 ? 1 : 4 }), { x: x.ptr, w: w.ptr, out: out.ptr, m, n, k });
    return out;
  }
  if (streamGemm && fits(d, x, w, streamGemmShapeError)) {
    const spec = { dtype: d.dtype, out: outType, ...streamGemmTiles(m) };
    d.launch(d.kernels.get('stream_gemm', findStreamGemm, spec), { x: x.ptr, w: w.ptr, out: out.ptr, m, n, k });
    return out;
  }
  d.addon.gemm({
    transA: true,
    transB: false,
    m: n,
    n: m,
    k,
    a: w.ptr,
    aType: w.dtype as 'f16' | 'bf16' | 'f32',
    lda: k,
    b: x.ptr,
    bType: x.dtype as 'f16' | 'bf16' | 'f32',
    ldb: k,
    c: out.ptr,
    cType: out.dtype as 'f16' | 'bf16' | 'f32',
    ldc: n,
    alpha: 1,
    beta: 0,
    stream: STREAM.compute,
    what: `matmul [${m}, ${k}] x [${n}, ${k}]^T`,
    ...(d.products.tuned && m <= DECODE_PRODUCT_ROWS ? { tune: true } : {}),
  });
  return out;
}

/**
 * Whether a product kernel takes x @ w^T: activation-dtype operands, a shape it takes
 * (`shapeError`: rows, n and k), 16-byte aligned rows.
 */
function fits(d: CudaDevice, x: CudaTensor, w: CudaTensor, shapeError: (m: number, n: number, k: number) => string | undefined): boolean {
  const [m, k] = x.shape;
  return x.dtype === d.dtype && w.dtype === d.dtype && shapeError(m, w.shape[0], k) === undefined && x.ptr % 16n === 0n && w.ptr % 16n === 0n;
}

export function rmsNorm(d: CudaDevice, xt: Tensor, wt: Tensor, eps: number): CudaTensor {
  const x = d.expect(d.tensor(xt, 'rmsNorm x'), 'rmsNorm x', [d.dtype]);
  const w = d.expect(d.tensor(wt, 'rmsNorm weight'), 'rmsNorm weight', [d.dtype], 1);
  const hidden = w.shape[0];
  if (x.shape.at(-1) !== hidden) throw invalidArgument(`rmsNorm: rows of ${String(x.shape.at(-1))} for a weight of ${hidden}`);
  const out = d.empty(x.shape, d.dtype, 'rmsNorm output');
  d.launch(d.kernels.get('rms_norm', findRmsNorm, { dtype: d.dtype }), { x: x.ptr, weight: w.ptr, out: out.ptr, rows: x.elements / hidden, hidden, eps });
  return out;
}

/** [a + b, rmsNorm(a + b)] in one launch, bit for bit what add then rmsNorm give. */
export function addRmsNorm(d: CudaDevice, at: Tensor, bt: Tensor, wt: Tensor, eps: number): [CudaTensor, CudaTensor] {
  const a = d.expect(d.tensor(at, 'addRmsNorm a'), 'addRmsNorm a', [d.dtype]);
  const b = d.expect(d.tensor(bt, 'addRmsNorm b'), 'addRmsNorm b', [d.dtype]);
  const w = d.expect(d.tensor(wt, 'addRmsNorm weight'), 'addRmsNorm weight', [d.dtype], 1);
  sameShape(a, b, 'addRmsNorm');
  const hidden = w.shape[0];
  if (a.shape.at(-1) !== hidden) throw invalidArgument(`addRmsNorm: rows of ${String(a.shape.at(-1))} for a weight of ${hidden}`);
  const sum = d.empty(a.shape, d.dtype, 'addRmsNorm sum');
  const out = d.empty(a.shape, d.dtype, 'addRmsNorm output');
  d.launch(d.kernels.get('add_rms_norm', findAddRmsNorm, { dtype: d.dtype }), {
    a: a.ptr,
    b: b.ptr,
    weight: w.ptr,
    sum: sum.ptr,
    out: out.ptr,
    rows: a.elements / hidden,
    hidden,
    eps,
  });
  return [sum, out];
}

export function createRopeTable(d: CudaDevice, spec: RopeSpec): CudaRopeTable {
  const half = spec.headDim / 2;
  if (spec.invFreq.length !== half) throw invalidArgument(`rope: ${spec.invFreq.length} frequencies for head dim ${spec.headDim}`);
  // The table outlives any tidy scope: it belongs to the model.
  return d.lifetimes.untracked(() => {
    const invFreq = d.upload(spec.invFreq, [half], 'f32', 'rope frequencies');
    const cos = d.empty([spec.maxPositions, half], 'f32', 'rope cos table');
    const sin = d.empty([spec.maxPositions, half], 'f32', 'rope sin table');
    d.launch(d.kernels.get('rope_table', findRopeTable, {}), {
      invFreq: invFreq.ptr,
      cos: cos.ptr,
      sin: sin.ptr,
      maxPositions: spec.maxPositions,
      half,
      attentionFactor: spec.attentionFactor ?? 1,
    });
    d.lifetimes.dispose(invFreq);
    return new CudaRopeTable(spec.headDim, spec.maxPositions, cos, sin);
  });
}

/** q and k rotated and v, from one [T, (H + 2 Hkv) * D] product with the stacked [q; k; v] weights: one rope_qkv launch. */
export function ropeQkv(
  d: CudaDevice,
  qkvT: Tensor,
  positionsT: Tensor,
  table: RopeTable,
  numHeads: number,
  numKvHeads: number,
): [CudaTensor, CudaTensor, CudaTensor] {
  if (!(table instanceof CudaRopeTable)) throw invalidArgument('rope table does not belong to the CUDA backend');
  const qkv = d.expect(d.tensor(qkvT, 'ropeQkv qkv'), 'ropeQkv qkv', [d.dtype], 2);
  const positions = d.expect(d.tensor(positionsT, 'ropeQkv positions'), 'ropeQkv positions', ['i32'], 1);
  const headDim = table.headDim;
  const [tokens, width] = qkv.shape;
  if (!Number.isInteger(numHeads) || !Number.isInteger(numKvHeads) || numHeads < 1 || numKvHeads < 1 || width !== (numHeads + 2 * numKvHeads) * headDim) {
    throw invalidArgument(
      `ropeQkv: qkv must be [T, ${(numHeads + 2 * numKvHeads) * headDim}] for ${numHeads} + 2 x ${numKvHeads} heads of ${headDim}, got [${qkv.shape.join(', ')}]`,
    );
  }
  if (positions.shape[0] !== tokens) throw invalidArgument(`ropeQkv: ${positions.shape[0]} positions for ${tokens} tokens`);
  const q = d.empty([tokens, numHeads, headDim], d.dtype, 'ropeQkv q');
  const k = d.empty([tokens, numKvHeads, headDim], d.dtype, 'ropeQkv k');
  const v = d.empty([tokens, numKvHeads, headDim], d.dtype, 'ropeQkv v');
  d.launch(d.kernels.get('rope_qkv', findRopeQkv, { dtype: d.dtype, headDim }), {
    qkv: qkv.ptr,
    positions: positions.ptr,
    cos: table.cos.ptr,
    sin: table.sin.ptr,
    q: q.ptr,
    k: k.ptr,
    v: v.ptr,
    numTokens: tokens,
    numHeads,
    numKvHeads,
    maxPositions: table.maxPositions,
  });
  return [q, k, v];
}

function sameShape(a: CudaTensor, b: CudaTensor, what: string): void {
  if (a.elements !== b.elements) throw invalidArgument(`${what}: [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ in size`);
}

/** silu(gate) * up of gateUp [T, 2I]'s column halves: one silu_gate_packed launch. */
export function siluGatePacked(d: CudaDevice, gateUpT: Tensor): CudaTensor {
  const gateUp = d.expect(d.tensor(gateUpT, 'siluGatePacked gateUp'), 'siluGatePacked gateUp', [d.dtype], 2);
  const [rows, cols] = gateUp.shape;
  if (cols % 2 !== 0) throw invalidArgument(`siluGatePacked: gateUp must be [T, 2I], got [${gateUp.shape.join(', ')}]`);
  const out = d.empty([rows, cols / 2], d.dtype, 'siluGatePacked output');
  d.launch(d.kernels.get('silu_gate_packed', findSiluGatePacked, { dtype: d.dtype }), { gateUp: gateUp.ptr, out: out.ptr, rows, width: cols / 2 });
  return out;
}

export function add(d: CudaDevice, at: Tensor, bt: Tensor): CudaTensor {
  const a = d.expect(d.tensor(at, 'add a'), 'add a', [d.dtype]);
  const b = d.expect(d.tensor(bt, 'add b'), 'add b', [d.dtype]);
  sameShape(a, b, 'add');
  const out = d.empty(a.shape, d.dtype, 'add output');
  d.launch(d.kernels.get('residual_add', findResidualAdd, { dtype: d.dtype }), { a: a.ptr, b: b.ptr, out: out.ptr, n: a.elements });
  return out;
}

/**
 * Rows of `t` at `indices`. The gather kernel copies bits, so 4-byte rows (f32
 * logits, i32) go through the 16-bit kernel as rows of twice as many halves.
 */
export function gatherRows(d: CudaDevice, tt: Tensor, indicesT: Tensor): CudaTensor {
  const t = d.tensor(tt, 'gatherRows table');
  const indices = d.expect(d.tensor(indicesT, 'gatherRows indices'), 'gatherRows indices', ['i32'], 1);
  const n = indices.shape[0];
  const out = d.empty([n, ...t.shape.slice(1)], t.dtype, 'gatherRows output');
  const halves = t.dtype === 'f32' || t.dtype === 'i32' ? 2 : 1;
  d.launch(d.kernels.get('embedding_gather', findEmbeddingGather, { dtype: halves === 2 ? 'f16' : (t.dtype as 'f16' | 'bf16') }), {
    table: t.ptr,
    indices: indices.ptr,
    out: out.ptr,
    n,
    rowSize: t.rowElements * halves,
    numRows: t.shape[0],
  });
  return out;
}

/** Uniform values in [-scale, scale) made on the device from (seed, index), in the activation dtype (benchmark weights). */
export function randomUniform(d: CudaDevice, shape: readonly number[], scale: number, seed: number): CudaTensor {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw invalidArgument(`randomUniform: seed must be a 32-bit unsigned integer, got ${seed}`);
  const out = d.empty(shape, d.dtype, `random [${shape.join(', ')}]`);
  d.launch(d.kernels.get('fill_uniform', findFillUniform, { dtype: d.dtype }), { out: out.ptr, n: out.elements, seed, scale });
  return out;
}
