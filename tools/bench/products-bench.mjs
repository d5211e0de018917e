#!/usr/bin/env node
// The decode products alone on a GPU: each of a model shape's matrix products (qkv, o,
// gate + up, down, lm head) at each row count, through each product kernel, timed on the
// device, against the HBM floor of reading the weights once:
//
//   node tools/bench/products-bench.mjs [--shapes llama2-7b,llama3-8b] [--rows 1,2,4,8,16,32,64]
//     [--kernels cublas,cublas-padded,cublas-tuned,gemv,stream] [--reps 24] [--dtype f16] [--out FILE]
//
// Kernels: cublas (cuBLAS at the row count), cublas-padded (cuBLAS at 64 rows, as the
// engine runs every decode product by default: what a step of that many rows costs),
// cublas-tuned (cublas-padded with the algorithm timed fastest at the shape's first call),
// gemv (up to 4 rows), stream (stream_gemm with streamGemmTiles' tiles). Each product
// runs `reps` times in one CUDA graph (so no launch gap is timed), cycling through
// copies of the weights that together pass 256 MB, so that none comes from L2. The
// floor is the weights' bytes over the device-to-device copy rate measured at the
// start. JSON out (stdout, and --out FILE rewritten after every row); progress on stderr.
import { writeFileSync } from 'node:fs';
import { CudaBackend } from '@arkvale/cuda-binding';
import { shapeConfig } from '@arkvale/model-llama';
import { int, list, oneOf, parseCommand } from '../lib/args.mjs';
import { copyRate, deviceMs } from './device-rates.mjs';
import { dtypeOption, shapeOption } from './model-options.mjs';

/** Each kernel: the CudaBackend options that send the products to it, and the rows it runs (the padded cuBLAS runs 64). */
const KERNELS = {
  cublas: { options: {}, takes: () => true },
  'cublas-padded': { options: {}, takes: () => true, runRows: () => 64 },
  // As cublas-padded, with the algorithm timed fastest at the shape's first call (CudaBackendOptions.tunedProducts).
  'cublas-tuned': { options: { tunedProducts: true }, takes: () => true, runRows: () => 64 },
  gemv: { options: { gemv: true }, takes: (m) => m <= 4 },
  stream: { options: { streamGemm: true }, takes: () => true },
};
const NONE = { gemv: false, streamGemm: false, tunedProducts: false };

const { values: opts } = parseCommand({
  usage: 'node tools/bench/products-bench.mjs [options]',
  about: `The decode products alone: each matrix product of a model shape at each row count, through
each product kernel, timed on the device in CUDA graphs, against the HBM floor of reading the
weights once. JSON on stdout (and --out FILE, rewritten after every row); progress on stderr.`,
  options: {
    shapes: { type: 'string', value: 'LIST', default: 'llama2-7b,llama3-8b', parse: list(shapeOption.parse), help: 'model shapes, comma-separated' },
    rows: { type: 'string', value: 'LIST', default: '1,2,4,8,16,32,64', parse: list(int({ min: 1, max: 64 })), help: 'rows per product (1 to 64)' },
    kernels: {
      type: 'string',
      value: 'LIST',
      default: Object.keys(KERNELS).join(','),
      parse: list(oneOf(...Object.keys(KERNELS))),
      help: Object.keys(KERNELS).join(', '),
    },
    reps: { type: 'string', value: 'N', default: '24', parse: int({ min: 1 }), help: 'products per timed graph' },
    dtype: dtypeOption,
    out: { type: 'string', value: 'FILE', help: 'also write the JSON to FILE' },
  },
});
const log = (t) => process.stderr.write(`${t}\n`);
const dtype = opts.dtype ?? 'f16';

/** [name, n, k, output] of a shape's decode products (the forward pass stacks q, k, v and gate, up). */
function products(shape) {
  const c = shapeConfig(shape);
  const kv = c.numKvHeads * c.headDim;
  return [
    ['qkv', c.numHeads * c.headDim + 2 * kv, c.hiddenSize, undefined],
    ['o', c.hiddenSize, c.numHeads * c.headDim, undefined],
    ['gate_up', 2 * c.intermediateSize, c.hiddenSize, undefined],
    ['down', c.hiddenSize, c.intermediateSize, undefined],
    ['lm_head', c.vocabSize, c.hiddenSize, 'f32'],
  ];
}

/** Device milliseconds per product: `reps` products (weights cycled) captured in one graph, timed by deviceMs over launches of it. */
function timeProducts(backend, x, weights, outDtype, reps) {
  const addon = backend.addon;
  const run = () => {
    for (let i = 0; i < reps; i++) backend.dispose(backend.matmul(x, weights[i % weights.length], outDtype));
  };
  // Loads the kernels and leaves the buffer pool holding the outputs' memory, so that the capture allocates nothing.
  run();
  addon.synchronize();
  addon.beginCapture(0);
  let graph;
  try {
    run();
  } finally {
    graph = addon.endCapture(0);
  }
  try {
    return deviceMs(addon, () => addon.launchGraph(graph, 0), 3) / reps;
  } finally {
    addon.destroyGraph(graph);
  }
}

const rowsOut = [];
const report = {
  bench: 'products',
  dtype,
  reps: opts.reps,
  device: undefined,
  copyGBps: undefined,
  rows: rowsOut,
};
const write = () => {
  if (opts.out) writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
};

for (const kernel of opts.kernels) {
  const spec = KERNELS[kernel];
  const backend = new CudaBackend({ dtype, graphs: false, ...NONE, ...spec.options });
  report.device ??= backend.deviceName;
  report.copyGBps ??= copyRate(backend.addon) / 1e6;
  for (const shape of opts.shapes) {
    for (const [name, n, k, outDtype] of products(shape)) {
      const bytes = n * k * 2;
      // Copies of the weights that together pass 256 MB (L2 is 50 MB on an H100, 60 MB on an H200).
      const copies = Math.max(1, Math.ceil((256 << 20) / bytes));
      const weights = Array.from({ length: copies }, (_, i) => backend.randomUniform([n, k], 0.02, 1 + i));
      for (const m of opts.rows) {
        if (!spec.takes(m)) continue;
        const runRows = spec.runRows?.(m) ?? m;
        const x = backend.randomUniform([runRows, k], 1, 7);
        const ms = timeProducts(backend, x, weights, outDtype, opts.reps);
        backend.dispose(x);
        const floorMs = bytes / (report.copyGBps * 1e6);
        const row = { kernel, shape, product: name, n, k, m, runRows, us: +(ms * 1000).toFixed(2), floorUs: +(floorMs * 1000).toFixed(2) };
        if (spec.options.tunedProducts) row.choice = backend.addon.gemmTuning().find((c) => c.m === n && c.n === runRows && c.k === k)?.algorithm;
        row.ofFloor = +(ms / floorMs).toFixed(3);
        rowsOut.push(row);
        log(`${kernel.padEnd(13)} ${shape} ${name.padEnd(7)} [${n}, ${k}] m ${String(m).padStart(2)}: ${row.us} us (${row.ofFloor}x the floor)`);
        write();
      }
      for (const w of weights) backend.dispose(w);
    }
  }
}
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
