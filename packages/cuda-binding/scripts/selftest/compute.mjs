// Self-test checks of compute: a generated kernel from the registry against a JS
// computation, cuBLAS gemm against a JS reference, and CUDA graph replay.
import { check, decode, encode, throwsMatching } from './util.mjs';
import { floatToHalfBits, halfToFloat } from '@arkvale/core';

const COMPUTE = 0;

/** f16 inputs a, b and the exact f16 result of the kernel's f32 add. */
function residualInputs(rand, n) {
  const a = new Uint16Array(n);
  const b = new Uint16Array(n);
  const sum = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = floatToHalfBits((rand() - 0.5) * 8);
    b[i] = floatToHalfBits((rand() - 0.5) * 8);
    sum[i] = floatToHalfBits(Math.fround(halfToFloat(a[i]) + halfToFloat(b[i])));
  }
  return { a, b, sum };
}

function launchAdd(addon, k, args, stream = COMPUTE) {
  addon.launch(k.name, k.grid(args), k.pack(args), stream);
}

/**
 * Column-major alpha op(A) op(B) + beta C in float64 from the rounded inputs, and
 * per element the magnitude the error is measured against (sum of |terms|).
 */
function gemmReference(p, a, b, c0) {
  const value = new Float64Array(p.ldc * p.n);
  const magnitude = new Float64Array(p.ldc * p.n);
  for (let j = 0; j < p.n; j++) {
    for (let i = 0; i < p.m; i++) {
      let acc = 0;
      let mag = 0;
      for (let q = 0; q < p.k; q++) {
        const x = p.transA ? a[q + i * p.lda] : a[i + q * p.lda];
        const y = p.transB ? b[j + q * p.ldb] : b[q + j * p.ldb];
        acc += x * y;
        mag += Math.abs(x * y);
      }
      const at = i + j * p.ldc;
      value[at] = p.alpha * acc + p.beta * c0[at];
      magnitude[at] = Math.abs(p.alpha) * mag + Math.abs(p.beta * c0[at]);
    }
  }
  return { value, magnitude };
}

const GEMM_TOLERANCE = { f32: 1e-4, f16: 2e-3, bf16: 1.6e-2 };

function runGemm(addon, rand, types, transA, transB) {
  const [aType, bType, cType] = types;
  const m = 37;
  const n = 19;
  const k = 64;
  // Padded leading dimensions, so lda/ldb/ldc are really used.
  const aRows = transA ? k : m;
  const aCols = transA ? m : k;
  const bRows = transB ? n : k;
  const bCols = transB ? k : n;
  const p = { transA, transB, m, n, k, lda: aRows + 3, ldb: bRows + 1, ldc: m + 2, alpha: 1.25, beta: 0.5, stream: COMPUTE };
  const values = (count) => Array.from({ length: count }, () => rand() * 2 - 1);
  const A = encode(values(p.lda * aCols), aType);
  const B = encode(values(p.ldb * bCols), bType);
  const C = encode(values(p.ldc * n), cType);
  const dev = {
    a: addon.alloc(A.bytes.length, 'gemm A'),
    b: addon.alloc(B.bytes.length, 'gemm B'),
    c: addon.alloc(C.bytes.length, 'gemm C'),
  };
  addon.upload(dev.a, A.bytes, COMPUTE, 'gemm A');
  addon.upload(dev.b, B.bytes, COMPUTE, 'gemm B');
  addon.upload(dev.c, C.bytes, COMPUTE, 'gemm C');
  const label = `${aType}x${bType}->${cType} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
  addon.gemm({ ...p, ...dev, aType, bType, cType, what: `self-test gemm ${label}` });
  const got = new Uint8Array(C.bytes.length);
  addon.download(dev.c, got, COMPUTE, 'gemm result');
  const result = decode(got, cType);
  const want = gemmReference(p, A.rounded, B.rounded, C.rounded);
  let worst = 0;
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < m; i++) {
      const at = i + j * p.ldc;
      worst = Math.max(worst, Math.abs(result[at] - want.value[at]) / Math.max(want.magnitude[at], 1e-6));
    }
    // Padding rows of C are untouched.
    for (let i = m; i < p.ldc; i++) check(result[i + j * p.ldc] === C.rounded[i + j * p.ldc], `${label}: gemm wrote into C's padding`);
  }
  for (const ptr of Object.values(dev)) addon.free(ptr);
  check(worst <= GEMM_TOLERANCE[cType], `${label}: worst relative error ${worst.toExponential(2)} > ${GEMM_TOLERANCE[cType]}`);
  return worst;
}

export const computeChecks = [
  {
    name: 'launch residual_add_f16 from the registry',
    run({ addon, rand, kernels }) {
      const k = kernels.residualAdd;
      const n = 10003; // not a multiple of the 8-element vectors: the tail path runs too
      const { a, b, sum } = residualInputs(rand, n);
      const dev = { a: addon.alloc(n * 2, 'add a'), b: addon.alloc(n * 2, 'add b'), out: addon.alloc(n * 2, 'add out') };
      addon.upload(dev.a, a, COMPUTE, 'add a');
      addon.upload(dev.b, b, COMPUTE, 'add b');
      addon.memset(dev.out, 0xff, n * 2, COMPUTE, 'poison out');
      launchAdd(addon, k, { ...dev, n });
      const got = new Uint16Array(n);
      addon.download(dev.out, got, COMPUTE, 'add out');
      let wrong = 0;
      for (let i = 0; i < n; i++) if (got[i] !== sum[i]) wrong++;
      for (const ptr of Object.values(dev)) addon.free(ptr);
      check(wrong === 0, `${wrong} of ${n} sums differ from the JS computation`);
      return `${n} f16 sums exact, grid ${k.grid({ ...dev, n }).join('x')}`;
    },
  },
  {
    name: 'gemm f32, f16 and bf16 against a JS reference',
    run({ addon, rand }) {
      const blas = addon.blasStatus();
      check(blas.loaded, `cuBLAS did not load: ${blas.reason}`);
      const typeSets = [
        ['f32', 'f32', 'f32'],
        ['f16', 'f16', 'f32'],
        ['f16', 'f16', 'f16'],
        ['bf16', 'bf16', 'f32'],
        ['bf16', 'bf16', 'bf16'],
      ];
      const worst = {};
      for (const types of typeSets) {
        for (const [ta, tb] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ]) {
          const e = runGemm(addon, rand, types, ta, tb);
          const key = types.join('/');
          worst[key] = Math.max(worst[key] ?? 0, e);
        }
      }
      const summary = Object.entries(worst)
        .map(([t, e]) => `${t} ${e.toExponential(1)}`)
        .join(', ');
      return `${blas.library} ${blas.version}; 20 products (4 transpose cases each), worst relative error: ${summary}`;
    },
  },
  {
    name: 'graph capture and replay',
    run({ addon, rand, kernels }) {
      const k = kernels.residualAdd;
      const n = 4096;
      const dev = { a: addon.alloc(n * 2, 'graph a'), b: addon.alloc(n * 2, 'graph b'), out: addon.alloc(n * 2, 'graph out') };
      const first = residualInputs(rand, n);
      addon.upload(dev.a, first.a, COMPUTE, 'graph a');
      addon.upload(dev.b, first.b, COMPUTE, 'graph b');
      launchAdd(addon, k, { ...dev, n }); // outside the capture first: the module is loaded before capturing
      addon.synchronize(COMPUTE);
      addon.beginCapture(COMPUTE);
      let graph;
      try {
        throwsMatching(
          () => addon.upload(dev.a, first.a, COMPUTE, 'upload during capture'),
          /^upload cannot run while the stream is being captured/,
          'upload during capture',
        );
        addon.memset(dev.out, 0, n * 2, COMPUTE, 'captured memset');
        launchAdd(addon, k, { ...dev, n });
      } finally {
        graph = addon.endCapture(COMPUTE);
      }
      // New inputs, then replay: the graph reads the buffers as they are now.
      const second = residualInputs(rand, n);
      addon.upload(dev.a, second.a, COMPUTE, 'graph a (second)');
      addon.upload(dev.b, second.b, COMPUTE, 'graph b (second)');
      addon.launchGraph(graph, COMPUTE);
      const got = new Uint16Array(n);
      addon.download(dev.out, got, COMPUTE, 'graph out');
      let wrong = 0;
      for (let i = 0; i < n; i++) if (got[i] !== second.sum[i]) wrong++;
      check(wrong === 0, `${wrong} of ${n} replayed sums are wrong`);
      addon.launchGraph(graph, COMPUTE);
      addon.synchronize(COMPUTE);
      addon.destroyGraph(graph);
      throwsMatching(() => addon.launchGraph(graph, COMPUTE), /^launchGraph: graph \d+ does not exist/, 'launch of a destroyed graph');
      for (const ptr of Object.values(dev)) addon.free(ptr);
      return 'memset + launch captured once, replayed twice on new inputs; uploads refused during capture';
    },
  },
];
