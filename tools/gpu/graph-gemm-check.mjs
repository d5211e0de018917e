#!/usr/bin/env node
// Whether cuBLAS is slower inside a CUDA graph: the 224 decode matrix products of a
// Llama-2-7B step (batch 4, 32 layers, random f16 weights), issued eagerly and as one
// captured graph, with and without 32 small host->device copies among them. On the GPU
// machine, with a bundle from `node tools/gpu/gpu-check.mjs prepare` (and its Node
// unpacked by `.gpu/bundle/arkvale inspect gpu`):
//
//   ARKVALE_CUDA_ADDON=$PWD/.gpu/bundle/build/Release/arkvale_cuda.node .gpu/bundle/node tools/gpu/graph-gemm-check.mjs
//
// Prints milliseconds per step (events) and the weights' floor at 4.2 TB/s as JSON.
import { createRequire } from 'node:module';
import { parseCommand } from '../lib/args.mjs';

const { fail } = parseCommand({
  usage: 'ARKVALE_CUDA_ADDON=PATH/arkvale_cuda.node node tools/gpu/graph-gemm-check.mjs',
  about: `Whether cuBLAS is slower inside a CUDA graph: a Llama-2-7B decode step's 224 matrix
products (batch 4), eager and as one graph, with and without 32 small host-to-device
copies among them. On a GPU machine; prints ms per step and the weights' floor as JSON.`,
});
if (!process.env.ARKVALE_CUDA_ADDON) fail('ARKVALE_CUDA_ADDON is not set (the path of arkvale_cuda.node, e.g. .gpu/bundle/build/Release/arkvale_cuda.node)');
const require = createRequire(import.meta.url);
const a = require(process.env.ARKVALE_CUDA_ADDON);
a.init(0, 64 << 20);
const S = 0;
const L = 32,
  m = 4;
const shapes = [
  [4096, 4096],
  [4096, 4096],
  [4096, 4096],
  [4096, 4096],
  [11008, 4096],
  [11008, 4096],
  [4096, 11008],
];
const layers = [];
for (let l = 0; l < L; l++) layers.push(shapes.map(([n, k]) => ({ n, k, w: a.alloc(n * k * 2, 'w') })));
const x = a.alloc(4 * 11008 * 2, 'x'),
  y = a.alloc(4 * 11008 * 2, 'y');
a.memset(x, 0, 4 * 11008 * 2, S, 'x');
for (const ly of layers) for (const g of ly) a.memset(g.w, 0, g.n * g.k * 2, S, 'w');
const pinned = a.hostAlloc(1 << 20, 'in');
const dev = a.alloc(1 << 20, 'dev');
function step(withCopies) {
  for (const ly of layers) {
    if (withCopies) a.copy(dev, pinned.host, 1024, S, 'h2d');
    for (const g of ly)
      a.gemm({
        transA: true,
        transB: false,
        m: g.n,
        n: m,
        k: g.k,
        a: g.w,
        aType: 'f16',
        lda: g.k,
        b: x,
        bType: 'f16',
        ldb: g.k,
        c: y,
        cType: 'f16',
        ldc: g.n,
        alpha: 1,
        beta: 0,
        stream: S,
        what: 'g',
      });
  }
}
function time(run, reps = 20) {
  for (let i = 0; i < 3; i++) run();
  a.synchronize();
  const e0 = a.recordEvent(S);
  for (let i = 0; i < reps; i++) run();
  const e1 = a.recordEvent(S);
  a.synchronize();
  return +(a.elapsedMs(e0, e1) / reps).toFixed(3);
}
const out = {};
for (const withCopies of [false, true]) {
  const tag = withCopies ? 'with32copies' : 'gemmsOnly';
  out[`${tag}Eager`] = time(() => step(withCopies));
  a.beginCapture(S);
  step(withCopies);
  const g = a.endCapture(S);
  out[`${tag}Graph`] = time(() => a.launchGraph(g, S));
}
const bytes = layers.flat().reduce((s, g) => s + g.n * g.k * 2, 0);
out.floorMs = +(bytes / 4.2e9).toFixed(3);
console.log(JSON.stringify(out));
