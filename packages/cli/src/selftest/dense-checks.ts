import { floatToBf16Bits, floatToHalfBits, type Tensor } from '@arkvale/core';
import type { CudaBackend } from '@arkvale/cuda-binding';
import { uniformAt } from '@arkvale/kernels-codegen/launch';
import { mismatches, quantize, relativeError, result, TOLERANCE, type CheckResult, type Twin } from './twin.js';

/** Columns [from, from + width) of every row of a [rows, rowWidth] array (the parts of a stacked product). */
function columns(values: ArrayLike<number>, rowWidth: number, from: number, width: number): Float32Array {
  return Float32Array.from({ length: (values.length / rowWidth) * width }, (_, i) => values[Math.floor(i / width) * rowWidth + from + (i % width)]);
}

/** Half-precision results: relative error against the reference within 1e-2. */
function half(t: Twin, check: string, detail: string, gpu: Parameters<Twin['read']>[0], ref: Parameters<Twin['read']>[1]): CheckResult {
  const [a, b] = t.read(gpu, ref);
  return result(check, detail, relativeError(a, b), TOLERANCE.half);
}

function f32(t: Twin, check: string, detail: string, gpu: Parameters<Twin['read']>[0], ref: Parameters<Twin['read']>[1]): CheckResult {
  const [a, b] = t.read(gpu, ref);
  return result(check, detail, relativeError(a, b), TOLERANCE.f32);
}

function exact(t: Twin, check: string, detail: string, gpu: Parameters<Twin['read']>[0], ref: Parameters<Twin['read']>[1]): CheckResult {
  const [a, b] = t.read(gpu, ref);
  return result(check, detail, mismatches(a, b), TOLERANCE.exact);
}

/** Memory and layout: uploads, reads, views, copies, gathers, checkpoint conversion. */
export function memoryChecks(t: Twin): CheckResult[] {
  const out: CheckResult[] = [];
  const f = t.f32([37, 11]);
  out.push(exact(t, 'fromArray/readSync', 'f32 [37, 11]', f.gpu, f.ref));
  const ids = t.ints(Array.from({ length: 1000 }, () => t.int(1 << 30) - (1 << 29)));
  out.push(exact(t, 'fromArray/readSync', 'i32 [1000]', ids.gpu, ids.ref));
  // A float32 checkpoint tensor stored in the GPU's dtype: the reference rounds the same way.
  const raw = new Float32Array(Array.from({ length: 515 }, () => (t.next() * 2 - 1) * 40));
  const encode = t.dtype === 'f16' ? floatToHalfBits : floatToBf16Bits;
  const back = t.gpu.readSync(t.gpu.fromBytes(new Uint8Array(raw.buffer), [515], 'f32'));
  const expected = t.ref.readSync(t.ref.fromBytes(new Uint8Array(Uint16Array.from(raw, encode).buffer), [515], t.dtype));
  out.push(result('fromBytes', `f32 checkpoint -> ${t.dtype}`, mismatches(back, expected), 0));
  const x = t.floats([12, 4, 64]);
  out.push(exact(t, 'reshape', '[12, 4, 64] -> [48, 64]', t.gpu.reshape(x.gpu, [48, 64]), t.ref.reshape(x.ref, [48, 64])));
  for (const [start, count] of [
    [3, 5],
    [0, 12],
    [11, 1],
  ]) {
    out.push(
      exact(t, 'sliceRows', `rows ${start}..${start + count} of [12, 4, 64]`, t.gpu.sliceRows(x.gpu, start, count), t.ref.sliceRows(x.ref, start, count)),
    );
  }
  // Rows of 3 f32 (12 bytes) break 16-byte alignment: the slice is copied.
  const odd = t.f32([9, 3]);
  out.push(exact(t, 'sliceRows', 'unaligned rows 1..5 of f32 [9, 3]', t.gpu.sliceRows(odd.gpu, 1, 4), t.ref.sliceRows(odd.ref, 1, 4)));
  const y = t.floats([5, 4, 64]);
  out.push(
    exact(
      t,
      'concatRows',
      '[12, 4, 64] + [5, 4, 64] + rows 2..4',
      t.gpu.concatRows([x.gpu, y.gpu, t.gpu.sliceRows(x.gpu, 2, 2)]),
      t.ref.concatRows([x.ref, y.ref, t.ref.sliceRows(x.ref, 2, 2)]),
    ),
  );
  const table = t.floats([50, 136]);
  const rows = t.ints([49, 0, 7, 7, 23]);
  out.push(exact(t, 'gatherRows', `${t.dtype} [50, 136] at 5 rows`, t.gpu.gatherRows(table.gpu, rows.gpu), t.ref.gatherRows(table.ref, rows.ref)));
  const logits = t.f32([6, 856]);
  const pick = t.ints([5, 0, 3]);
  out.push(exact(t, 'gatherRows', 'f32 [6, 856] at 3 rows', t.gpu.gatherRows(logits.gpu, pick.gpu), t.ref.gatherRows(logits.ref, pick.ref)));
  return out;
}

/** Dense math of the forward pass. */
export function denseChecks(t: Twin): CheckResult[] {
  const out: CheckResult[] = [];
  for (const [m, n, k] of [
    [1, 1536, 512],
    [37, 64, 128],
    [300, 512, 4096],
    [4, 856, 512],
  ]) {
    const x = t.floats([m, k]);
    const w = t.floats([n, k], 0.05);
    out.push(half(t, 'matmul', `[${m}, ${k}] x [${n}, ${k}]^T -> ${t.dtype}`, t.gpu.matmul(x.gpu, w.gpu), t.ref.matmul(x.ref, w.ref)));
    out.push(f32(t, 'matmul', `[${m}, ${k}] x [${n}, ${k}]^T -> f32`, t.gpu.matmul(x.gpu, w.gpu, 'f32'), t.ref.matmul(x.ref, w.ref, 'f32')));
  }
  for (const [rows, hidden] of [
    [3, 520],
    [1, 4096],
    [257, 512],
  ]) {
    const x = t.floats([rows, hidden], 3);
    const w = t.floats([hidden], 1.5);
    out.push(half(t, 'rmsNorm', `[${rows}, ${hidden}]`, t.gpu.rmsNorm(x.gpu, w.gpu, 1e-5), t.ref.rmsNorm(x.ref, w.ref, 1e-5)));
    const y = t.floats([rows, hidden], 3);
    const [sum, normed] = t.gpu.addRmsNorm(x.gpu, y.gpu, w.gpu, 1e-5);
    const [refSum, refNormed] = t.ref.addRmsNorm(x.ref, y.ref, w.ref, 1e-5);
    out.push(half(t, 'addRmsNorm', `[${rows}, ${hidden}] sum`, sum, refSum));
    out.push(half(t, 'addRmsNorm', `[${rows}, ${hidden}] norm`, normed, refNormed));
    // The forward pass relies on the fused op giving exactly what add then rmsNorm give.
    const apart = t.gpu.add(x.gpu, y.gpu);
    const fused = [...t.gpu.readSync(sum), ...t.gpu.readSync(normed)];
    const unfused = [...t.gpu.readSync(apart), ...t.gpu.readSync(t.gpu.rmsNorm(apart, w.gpu, 1e-5))];
    out.push(result('addRmsNorm', `[${rows}, ${hidden}] equals add then rmsNorm bit for bit`, mismatches(fused, unfused), TOLERANCE.exact));
  }
  for (const n of [5000, 8, 13]) {
    const a = t.floats([n], 4);
    const b = t.floats([n], 4);
    out.push(half(t, 'add', `${n} elements`, t.gpu.add(a.gpu, b.gpu), t.ref.add(a.ref, b.ref)));
  }
  // Widths of vectors (1376 = 11008 / 8, 8), of single elements (13) and one long row (5000).
  for (const [rows, width] of [
    [4, 1376],
    [3, 13],
    [2, 8],
    [1, 5000],
  ]) {
    const gu = t.floats([rows, 2 * width], 4);
    out.push(half(t, 'siluGatePacked', `[${rows}, 2 x ${width}]`, t.gpu.siluGatePacked(gu.gpu), t.ref.siluGatePacked(gu.ref)));
  }
  for (const headDim of [64, 128]) {
    const maxPositions = 4096;
    const invFreq = Float32Array.from({ length: headDim / 2 }, (_, i) => 1 / 500000 ** ((2 * i) / headDim));
    const spec = { headDim, maxPositions, invFreq, attentionFactor: 1 };
    const gt = t.gpu.createRopeTable(spec);
    const rt = t.ref.createRopeTable(spec);
    const positions = t.ints([0, 1, 17, 4095, 300, 2048, 5, 999, 3000]);
    // [q | k | v] rows of 4 + 2 x 2 heads: q and k rotated, v's columns as they are.
    const qkv = t.floats([9, 8 * headDim]);
    const got = t.gpu.ropeQkv(qkv.gpu, positions.gpu, gt, 4, 2);
    const want = t.ref.ropeQkv(qkv.ref, positions.ref, rt, 4, 2);
    const detail = `[9, 8 x ${headDim}], positions up to ${maxPositions - 1}`;
    ['q', 'k'].forEach((name, i) => out.push(half(t, 'ropeQkv', `${detail} ${name}`, got[i], want[i])));
    out.push(
      result(
        'ropeQkv',
        `${detail} v equals v's columns bit for bit`,
        mismatches(t.gpu.readSync(got[2]), columns(qkv.values, 8 * headDim, 6 * headDim, 2 * headDim)),
        TOLERANCE.exact,
      ),
    );
  }
  return out;
}

type OutDtype = 'f32' | undefined;

/** What `decodeProductChecks` asks of a kernel for decode products (stream_gemm, gemv). */
interface DecodeProductKernel {
  /** The checks' names: values, and row invariance. */
  readonly check: string;
  readonly invarianceCheck: string;
  /** The most rows a product of it takes (the backend sends one more to cuBLAS). */
  readonly rows: number;
  /** Row counts (and outputs) checked against the reference at [4096, 4096]. */
  readonly referenceRows: readonly (readonly [number, OutDtype])[];
  /** [n, k, output] of the products checked against cuBLAS, weights made on the device. */
  readonly shapes: readonly (readonly [number, number, OutDtype])[];
  /** Invariance cases over x's first rows: what, the input, the rows of its product compared, and the rows of the `rows`-row product they must equal. */
  cases(x: Tensor, k: number): readonly (readonly [string, Tensor, readonly number[], readonly number[]])[];
}

/**
 * A decode-product kernel (`gpu` made with it on; `t` its twin): values against the
 * reference at [4096, 4096]; against cuBLAS at each shape, which the same backend runs
 * on one row more than the kernel takes; and at each, its invariance cases bit for bit.
 */
function decodeProductChecks(t: Twin, gpu: CudaBackend, kernel: DecodeProductKernel): CheckResult[] {
  const out: CheckResult[] = [];
  const g = t.gpu;
  const rowsOf = (values: Float32Array | Int32Array, n: number, rows: readonly number[]) =>
    rows.flatMap((r) => Array.from(values.subarray(r * n, (r + 1) * n)));
  const tolerance = (outDtype: OutDtype) => (outDtype ? TOLERANCE.f32 : TOLERANCE.half);
  const invariance = (label: string, x: Tensor, w: Tensor, k: number, n: number, outDtype?: 'f32') => {
    const full = g.readSync(g.matmul(g.sliceRows(x, 0, kernel.rows), w, outDtype));
    for (const [what, input, picks, from] of kernel.cases(x, k)) {
      const got = g.readSync(g.matmul(input, w, outDtype));
      out.push(
        result(kernel.invarianceCheck, `${label}: ${what} = rows of ${kernel.rows}`, mismatches(rowsOf(got, n, picks), rowsOf(full, n, from)), TOLERANCE.exact),
      );
    }
  };
  {
    const [n, k] = [4096, 4096];
    const x = t.floats([kernel.rows, k]);
    const w = t.floats([n, k], 0.05);
    for (const [m, outDtype] of kernel.referenceRows) {
      const detail = `[${m}, ${k}] x [${n}, ${k}]^T -> ${outDtype ?? t.dtype}`;
      const [a, b] = t.read(g.matmul(g.sliceRows(x.gpu, 0, m), w.gpu, outDtype), t.ref.matmul(t.ref.sliceRows(x.ref, 0, m), w.ref, outDtype));
      out.push(result(kernel.check, `${detail} against the reference`, relativeError(a, b), tolerance(outDtype)));
    }
    invariance(`[${n}, ${k}]`, x.gpu, w.gpu, k, n);
  }
  for (const [n, k, outDtype] of kernel.shapes) {
    const label = `[${n}, ${k}]${outDtype ? ' (-> f32)' : ''}`;
    const w = gpu.randomUniform([n, k], 0.02, n + k);
    const x = t.floats([kernel.rows + 1, k]).gpu;
    const own = g.readSync(g.matmul(g.sliceRows(x, 0, kernel.rows), w, outDtype));
    const cublas = g.readSync(g.sliceRows(g.matmul(x, w, outDtype), 0, kernel.rows));
    const detail = `[${kernel.rows}, ${k}] x [${n}, ${k}]^T -> ${outDtype ?? t.dtype} against cuBLAS`;
    out.push(result(kernel.check, detail, relativeError(own, cublas), tolerance(outDtype)));
    invariance(label, x, w, k, n, outDtype);
  }
  return out;
}

/** The Llama-2-7B and Llama-3-8B decode products, [n, k, output]: qkv, gate + up, down, lm head (into f32). */
const MODEL_PRODUCTS: readonly (readonly [number, number, OutDtype])[] = [
  [12288, 4096, undefined],
  [22016, 4096, undefined],
  [4096, 11008, undefined],
  [32000, 4096, 'f32'],
  [6144, 4096, undefined],
  [28672, 4096, undefined],
  [4096, 14336, undefined],
  [128256, 4096, 'f32'],
];

/**
 * The decode products of 1 to 64 rows through stream_gemm (`gpu` made with streamGemm
 * on; `t` its twin): values against the reference at [4096, 4096] for 1, 17 and 64 rows
 * (one, two and four m-tiles); against cuBLAS (the same backend runs 65 rows through it)
 * at the Llama-2-7B and Llama-3-8B products, weights made on the device, lm heads into
 * f32; and at each, row invariance bit for bit against the same rows of a 64-row
 * product: row 0 alone, rows 0 and 2 of 3 with row 1 changed, rows 0-2 and 32 of 33
 * with rows 3-31 changed (row 32 alone in its m-tile).
 */
export function streamGemmChecks(t: Twin, gpu: CudaBackend): CheckResult[] {
  const g = t.gpu;
  return decodeProductChecks(t, gpu, {
    check: 'stream_gemm matmul',
    invarianceCheck: 'stream_gemm row invariance',
    rows: 64,
    referenceRows: [
      [1, undefined],
      [17, 'f32'],
      [64, undefined],
    ],
    shapes: MODEL_PRODUCTS,
    cases: (x, k) => {
      const other = (rows: number) => t.floats([rows, k], 2).gpu;
      return [
        ['row 0 alone', g.sliceRows(x, 0, 1), [0], [0]],
        ['rows 0, 2 of 3, row 1 changed', g.concatRows([g.sliceRows(x, 0, 1), other(1), g.sliceRows(x, 2, 1)]), [0, 2], [0, 2]],
        ['rows 0-2, 32 of 33, rows 3-31 changed', g.concatRows([g.sliceRows(x, 0, 3), other(29), g.sliceRows(x, 32, 1)]), [0, 1, 2, 32], [0, 1, 2, 32]],
      ];
    },
  });
}

/**
 * The decode products of 1 to 4 rows through gemv (`gpu` made with gemv on; `t` its
 * twin): values against the reference at [4096, 4096] for 1, 3 and 4 rows; against
 * cuBLAS (the same backend runs 5 rows through it) at the Llama-2-7B and Llama-3-8B
 * products, weights made on the device, lm heads into f32; and at each, row invariance
 * bit for bit: row 0 alone (the one-row kernel) and rows 0 and 2 of 3 with row 1
 * changed, against the same rows of a 4-row product.
 */
export function gemvChecks(t: Twin, gpu: CudaBackend): CheckResult[] {
  const g = t.gpu;
  return decodeProductChecks(t, gpu, {
    check: 'gemv matmul',
    invarianceCheck: 'gemv row invariance',
    rows: 4,
    referenceRows: [
      [1, undefined],
      [3, 'f32'],
      [4, undefined],
    ],
    shapes: MODEL_PRODUCTS,
    cases: (x, k) => [
      ['row 0 alone', g.sliceRows(x, 0, 1), [0], [0]],
      ['rows 0, 2 of 3, row 1 changed', g.concatRows([g.sliceRows(x, 0, 1), t.floats([1, k], 2).gpu, g.sliceRows(x, 2, 1)]), [0, 2], [0, 2]],
    ],
  });
}

/** Random weights made on the device (benchmark models) against the kernel's host formula, rounded to the dtype. */
export function randomChecks(t: Twin, gpu: CudaBackend): CheckResult[] {
  const n = 70_001;
  const got = t.gpu.readSync(gpu.randomUniform([n], 0.03, 4242));
  const { values } = quantize(
    Float32Array.from({ length: n }, (_, i) => uniformAt(i, 4242, 0.03)),
    t.dtype,
  );
  return [result('randomUniform', `${n} elements, seed 4242`, mismatches(got, values), TOLERANCE.exact)];
}

/** Greedy and sampled token choice. */
export function decodingChecks(t: Twin): CheckResult[] {
  const out: CheckResult[] = [];
  const logits = t.f32([4, 2000], 3);
  out.push(exact(t, 'argmax', 'f32 [4, 2000]', t.gpu.argmax(logits.gpu), t.ref.argmax(logits.ref)));
  const halves = t.floats([3, 856], 3);
  out.push(exact(t, 'argmax', `${t.dtype} [3, 856]`, t.gpu.argmax(halves.gpu), t.ref.argmax(halves.ref)));
  for (const params of [
    { temperature: 0.8, topK: 0, topP: 1 },
    { temperature: 1, topK: 20, topP: 0.9 },
    { temperature: 1.3, topK: 50, topP: 0.8 },
  ]) {
    const u = t.f32([4], 0.5);
    const uniforms = t.gpu.fromArray(
      u.values.map((v) => v + 0.5),
      [4],
    );
    const uref = t.ref.fromArray(
      u.values.map((v) => v + 0.5),
      [4],
    );
    out.push(exact(t, 'sample', `f32 [4, 2000] ${JSON.stringify(params)}`, t.gpu.sample(logits.gpu, params, uniforms), t.ref.sample(logits.ref, params, uref)));
  }
  return out;
}
