/** What the GPU check runs: every kernel family on small random problems, plus two timings. */
import { EmuBuffer } from '../emulator/memory.js';
import { causalPrefillKernel } from '../kernels/causal-prefill.kernel.js';
import { copyPagesKernel, recallListedKernel } from '../kernels/copy-pages.kernel.js';
import { argmaxKernel, sampleKernel } from '../kernels/decoding.kernel.js';
import { residualAddKernel, siluGateKernel, siluGatePackedKernel } from '../kernels/elementwise.kernel.js';
import { embeddingGatherKernel } from '../kernels/embedding.kernel.js';
import { estimateKernel, estimatePagesPerBlock } from '../kernels/estimate.kernel.js';
import { estimateRowsKernel } from '../kernels/estimate-rows.kernel.js';
import { prefillKeySumsKernel, prefillKeySumsMergeKernel } from '../kernels/key-scores.kernel.js';
import { kvAppendKernel } from '../kernels/kv-append.kernel.js';
import { pageDigestKernel } from '../kernels/page-digest.kernel.js';
import { pagedDecodeKernel, pagedDecodeMergeKernel, pagedDecodeSplits, splitTokensFor } from '../kernels/paged-decode.kernel.js';
import { addRmsNormKernel, rmsNormKernel } from '../kernels/rms-norm.kernel.js';
import { ropeKernel, ropeQkvKernel, ropeTableKernel } from '../kernels/rope.kernel.js';
import { scatterI32Kernel } from '../kernels/scatter.kernel.js';
import { streamGemmKernel, streamGemmTiles } from '../kernels/stream-gemm.kernel.js';
import { selectAttendKernel } from '../kernels/select-attend.kernel.js';
import { selectResidentKernel } from '../kernels/select-resident.kernel.js';
import { pagedTokenScoresFp8Kernel, pagedTokenScoresKernel } from '../kernels/token-scores.kernel.js';
import { kvAppendFp8Kernel } from '../kernels/kv-append.kernel.js';
import { pageDigestFp8Kernel } from '../kernels/page-digest.kernel.js';
import { pagedDecodeFp8Kernel } from '../kernels/paged-decode.kernel.js';
import { pagedPrefillFp8Kernel } from '../kernels/paged-prefill.kernel.js';
import { DIGEST_VARIANTS, type Matrix } from '../spec/matrix.js';
import { Rng } from '../random.js';
import type { GpuJobs } from './jobs.js';

/** Every specialisation the scenarios use. */
export const GPU_CHECK_MATRIX: Matrix = {
  dtype: ['f16', 'bf16'],
  headDim: [64, 128, 256],
  pageSize: [8, 16, 32],
  group: [1, 2, 4, 8],
  digest: DIGEST_VARIANTS,
};

const TOL = { f16: 2e-3, bf16: 1.6e-2, f32: 1e-4, exact: 0 } as const;
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

export function buildScenarios(jobs: GpuJobs): void {
  const rng = new Rng(2024);
  const rand = (dtype: 'f16' | 'bf16' | 'f32', n: number, lo = -1, hi = 1) => EmuBuffer.from(dtype, rng.array(n, lo, hi));

  for (const [dtype, headDim, tokens, heads, kvHeads] of [
    ['f16', 64, 70, 2, 1],
    ['bf16', 128, 97, 4, 2],
    ['f16', 256, 40, 2, 2],
  ] as const) {
    const q = rand(dtype, tokens * heads * headDim);
    const k = rand(dtype, tokens * kvHeads * headDim);
    const v = rand(dtype, tokens * kvHeads * headDim);
    const lse = new EmuBuffer('f32', tokens * heads);
    const scale = 1 / Math.sqrt(headDim);
    for (const stages of [1, 2] as const) {
      const out = new EmuBuffer(dtype, tokens * heads * headDim);
      jobs.launch(causalPrefillKernel, { dtype, headDim, stages }, { q, k, v, out, lse, numTokens: tokens, numHeads: heads, numKvHeads: kvHeads, scale });
      jobs.output(out, `causal_prefill ${dtype} hd${headDim}, ${stages} stage(s)`, TOL[dtype]);
    }
    jobs.output(lse, `causal_prefill lse ${dtype} hd${headDim}`, TOL.f32);
    const partial = new EmuBuffer('f32', heads * tokens);
    const scores = new EmuBuffer('f32', tokens);
    jobs.launch(prefillKeySumsKernel, { dtype, headDim }, { q, k, lse, partial, numTokens: tokens, numHeads: heads, numKvHeads: kvHeads, scale });
    jobs.launch(prefillKeySumsMergeKernel, {}, { partial, scores, numTokens: tokens, numHeads: heads });
    jobs.output(scores, `prefill_key_sums ${dtype} hd${headDim}`, TOL.f32);
  }

  for (const [dtype, headDim, pageSize, heads, kvHeads, lists, splits] of [
    ['f16', 128, 32, 8, 2, 1, 3],
    ['bf16', 64, 16, 8, 8, 8, 2],
    ['f16', 256, 8, 4, 1, 1, 4],
  ] as const) {
    const slots = 10;
    const batch = 2;
    const maxPages = 6;
    const pool = rand(dtype, slots * 2 * kvHeads * pageSize * headDim);
    const table = Array.from({ length: batch * lists * maxPages }, () => rng.int(slots));
    const counts = Array.from({ length: batch * lists }, () => 1 + rng.int(maxPages));
    const lasts = Array.from({ length: batch * lists }, () => 1 + rng.int(pageSize));
    const pages = { pool, pageTable: EmuBuffer.from('i32', table), pageCounts: EmuBuffer.from('i32', counts), lastPageLens: EmuBuffer.from('i32', lasts) };
    const q = rand(dtype, batch * heads * headDim, -2, 2);
    const shape = { batch, numHeads: heads, numKvHeads: kvHeads, numLists: lists, maxPages, scale: 1 / Math.sqrt(headDim) };
    const partialOut = new EmuBuffer('f32', batch * heads * splits * headDim);
    const partialLse = new EmuBuffer('f32', batch * heads * splits);
    const group = gcd(heads / kvHeads, heads / lists);
    // The last split of each block of heads merges them (its counts start at 0).
    const out = new EmuBuffer(dtype, batch * heads * headDim);
    const lse = new EmuBuffer('f32', batch * heads);
    const counters = new EmuBuffer('i32', (batch * heads) / group);
    jobs.launch(
      pagedDecodeKernel,
      { dtype, headDim, pageSize, group },
      { q, ...pages, partialOut, partialLse, out, lse, counters, ...shape, numSplits: splits, splitTokens: splitTokensFor(maxPages * pageSize, splits) },
    );
    jobs.output(out, `paged_decode (merged by its last splits) ${dtype} hd${headDim} ps${pageSize} g${group}`, TOL[dtype]);
    const scores = new EmuBuffer('f32', batch * lists * maxPages * pageSize);
    jobs.launch(pagedTokenScoresKernel, { dtype, headDim, pageSize }, { q, ...pages, lse, scores, ...shape });
    jobs.output(scores, `paged_token_scores ${dtype}`, TOL.f32);
  }

  {
    const dtype = 'bf16';
    const headDim = 128;
    const pageSize = 16;
    const kvHeads = 2;
    const slots = 6;
    const pool = rand(dtype, slots * 2 * kvHeads * pageSize * headDim, -2, 2);
    jobs.launch(
      kvAppendKernel,
      { dtype, headDim, pageSize },
      {
        k: rand(dtype, 4 * kvHeads * headDim),
        v: rand(dtype, 4 * kvHeads * headDim),
        slots: EmuBuffer.from('i32', [5, 0, 2, 5]),
        offsets: EmuBuffer.from('i32', [0, 15, 3, 1]),
        pool,
        numTokens: 4,
        numKvHeads: kvHeads,
      },
    );
    for (const variant of DIGEST_VARIANTS) {
      const digests = new EmuBuffer(dtype, 4 * kvHeads * 2 * headDim);
      jobs.launch(
        pageDigestKernel,
        { dtype, headDim, pageSize, variant },
        {
          pool,
          slots: EmuBuffer.from('i32', [1, 4, 5]),
          rows: EmuBuffer.from('i32', [3, 0, 1]),
          digests,
          numPages: 3,
          numKvHeads: kvHeads,
        },
      );
      jobs.output(digests, `page_digest ${variant}`, TOL[dtype]);
      const est = new EmuBuffer('f32', 2 * 4);
      jobs.launch(
        estimateKernel,
        { dtype, headDim, variant },
        {
          q: rand(dtype, 4 * headDim),
          digests,
          rows: EmuBuffer.from('i32', [0, 1, 3, 0]),
          out: est,
          numPages: 4,
          numHeads: 4,
          numKvHeads: kvHeads,
          groups: 2,
          // Two blocks, the second with one page past the output.
          pagesPerBlock: 3,
        },
      );
      jobs.output(est, `estimate ${variant}`, TOL.f32);
    }
    jobs.output(pool, 'kv_append', TOL.exact);
    const pageWords = kvHeads * pageSize * headDim;
    const host = EmuBuffer.from(
      'u32',
      Array.from({ length: 5 * pageWords }, () => rng.int(2 ** 32)),
    );
    const device = new EmuBuffer('u32', slots * pageWords);
    jobs.launch(
      copyPagesKernel,
      {},
      { src: host, dst: device, srcSlots: EmuBuffer.from('i32', [4, 0, 2]), dstSlots: EmuBuffer.from('i32', [1, 3, 5]), numPages: 3, pageWords },
      { mapped: ['src'] },
    );
    jobs.output(device, 'copy_pages (mapped host memory)', TOL.exact);
  }

  deviceSelection(jobs, rng);
  selectionOverChunks(jobs, rng);
  questSelection(jobs, rng);
  fp8Pages(jobs, rng);
  streamGemm(jobs, rng);

  for (const dtype of ['f16', 'bf16'] as const) {
    const rows = 3;
    const hidden = 520;
    const normed = new EmuBuffer(dtype, rows * hidden);
    jobs.launch(
      rmsNormKernel,
      { dtype },
      { x: rand(dtype, rows * hidden, -3, 3), weight: rand(dtype, hidden, 0.5, 1.5), out: normed, rows, hidden, eps: 1e-5 },
    );
    jobs.output(normed, `rms_norm ${dtype}`, TOL[dtype]);
    const fusedSum = new EmuBuffer(dtype, rows * 2064);
    const fusedNorm = new EmuBuffer(dtype, rows * 2064);
    jobs.launch(
      addRmsNormKernel,
      { dtype },
      {
        a: rand(dtype, rows * 2064, -3, 3),
        b: rand(dtype, rows * 2064, -3, 3),
        weight: rand(dtype, 2064, 0.5, 1.5),
        sum: fusedSum,
        out: fusedNorm,
        rows,
        hidden: 2064,
        eps: 1e-5,
      },
    );
    jobs.output(fusedSum, `add_rms_norm ${dtype} (sum)`, TOL.exact);
    jobs.output(fusedNorm, `add_rms_norm ${dtype} (norm)`, TOL[dtype]);
    const n = 5000;
    const a = rand(dtype, n, -4, 4);
    const b = rand(dtype, n, -4, 4);
    const gated = new EmuBuffer(dtype, n);
    const sum = new EmuBuffer(dtype, n);
    jobs.launch(siluGateKernel, { dtype }, { gate: a, up: b, out: gated, n });
    jobs.launch(residualAddKernel, { dtype }, { a, b, out: sum, n });
    jobs.output(gated, `silu_gate ${dtype}`, TOL[dtype]);
    jobs.output(sum, `residual_add ${dtype}`, TOL.exact);
    const rowsOut = new EmuBuffer(dtype, 4 * 136);
    jobs.launch(
      embeddingGatherKernel,
      { dtype },
      { table: rand(dtype, 50 * 136), indices: EmuBuffer.from('i32', [49, 0, 7, 60]), out: rowsOut, n: 4, rowSize: 136, numRows: 50 },
    );
    jobs.output(rowsOut, `embedding_gather ${dtype}`, TOL.exact);
    const headDim = 128;
    const maxPositions = 64;
    const invFreq = EmuBuffer.from(
      'f32',
      Array.from({ length: headDim / 2 }, (_, i) => 1 / 500000 ** ((2 * i) / headDim)),
    );
    const cos = new EmuBuffer('f32', (maxPositions * headDim) / 2);
    const sin = new EmuBuffer('f32', (maxPositions * headDim) / 2);
    jobs.launch(ropeTableKernel, {}, { invFreq, cos, sin, maxPositions, half: headDim / 2, attentionFactor: 1 });
    const rotated = new EmuBuffer(dtype, 3 * 4 * headDim);
    jobs.launch(
      ropeKernel,
      { dtype, headDim },
      { x: rand(dtype, 3 * 4 * headDim), positions: EmuBuffer.from('i32', [0, 33, 63]), cos, sin, out: rotated, numTokens: 3, numHeads: 4, maxPositions },
    );
    jobs.output(cos, `rope_table ${dtype}`, 1e-6);
    jobs.output(rotated, `rope ${dtype}`, TOL[dtype]);
    // [q | k | v] rows of 4 + 2 x 2 heads.
    const [q, k, v] = [4, 2, 2].map((h) => new EmuBuffer(dtype, 3 * h * headDim));
    jobs.launch(
      ropeQkvKernel,
      { dtype, headDim },
      {
        qkv: rand(dtype, 3 * 8 * headDim),
        positions: EmuBuffer.from('i32', [0, 33, 63]),
        cos,
        sin,
        q,
        k,
        v,
        numTokens: 3,
        numHeads: 4,
        numKvHeads: 2,
        maxPositions,
      },
    );
    [q, k].forEach((out, i) => jobs.output(out, `rope_qkv ${dtype} (${'qk'[i]})`, TOL[dtype]));
    jobs.output(v, `rope_qkv ${dtype} (v)`, TOL.exact);
    // Widths of vectors and of single elements.
    for (const width of [1376, 13]) {
      const packed = new EmuBuffer(dtype, 4 * width);
      jobs.launch(siluGatePackedKernel, { dtype }, { gateUp: rand(dtype, 4 * 2 * width, -4, 4), out: packed, rows: 4, width });
      jobs.output(packed, `silu_gate_packed ${dtype} (width ${width})`, TOL[dtype]);
    }
  }

  for (const params of [
    { temperature: 0, topK: 0, topP: 1 },
    { temperature: 0.8, topK: 0, topP: 1 },
    { temperature: 1, topK: 20, topP: 0.9 },
  ]) {
    const rows = 4;
    const vocab = 2000;
    const logits = rand('f32', rows * vocab, -3, 3);
    const tokens = new EmuBuffer('i32', rows);
    jobs.launch(sampleKernel, { dtype: 'f32' }, { logits, uniforms: rand('f32', rows, 0, 1), out: tokens, rows, vocab, ...params });
    jobs.output(tokens, `sample ${JSON.stringify(params)}`, TOL.exact);
    const best = new EmuBuffer('i32', rows);
    jobs.launch(argmaxKernel, { dtype: 'f32' }, { logits, out: best, rows, vocab });
    jobs.output(best, 'argmax', TOL.exact);
  }
}

/**
 * stream_gemm (decode products, x [m <= 64, k] @ w [n, k]^T) at m = 1, 3, 17, 40 and 64,
 * into the input type and f32, with the tiles streamGemmTiles picks (n not a multiple of
 * a block's features, k short of the 8 warps' chunks). Row invariance on the
 * GPU (bits against bits) is `arkvale selftest`'s check (dense-checks.ts), at the
 * models' shapes.
 */
function streamGemm(jobs: GpuJobs, rng: Rng): void {
  for (const [dtype, out, m, n, k] of [
    ['f16', 'f16', 1, 256, 512],
    ['bf16', 'f32', 64, 192, 256],
    ['bf16', 'bf16', 17, 120, 1056],
    ['f16', 'f32', 40, 36, 1024],
    ['bf16', 'bf16', 3, 128, 96],
  ] as const) {
    const x = EmuBuffer.from(dtype, rng.array(m * k, -1, 1));
    const w = EmuBuffer.from(dtype, rng.array(n * k, -0.5, 0.5));
    const result = new EmuBuffer(out, m * n);
    const tiles = streamGemmTiles(m);
    jobs.launch(streamGemmKernel, { dtype, out, ...tiles }, { x, w, out: result, m, n, k });
    jobs.output(result, `stream_gemm ${dtype} -> ${out}, m ${m}, [${n}, ${k}], tiles ${tiles.mTiles} x ${tiles.nTiles}`, TOL[out]);
  }
}

/**
 * fp8 KV pages: kv_append_fp8 byte for byte (rows at magnitudes 2^-6 .. 2^1, each with
 * its own scale byte, and a row of e4m3 ties, so the GPU's conversion is checked
 * against core's codec), then on the pages it wrote:
 * page_digest_fp8, paged_decode_fp8 with the merge and paged_token_scores_fp8, and
 * paged_prefill_fp8 with the merge.
 */
function fp8Pages(jobs: GpuJobs, rng: Rng): void {
  for (const [dtype, headDim, pageSize, heads, kvHeads, lists, splits] of [
    ['f16', 128, 16, 8, 2, 1, 3],
    ['bf16', 64, 32, 4, 4, 4, 2],
  ] as const) {
    const slots = 8;
    const tokens = slots * pageSize;
    // core's pageBytes for fp8: codes, then a scale byte per [K|V][kvHead][token], padded to 16.
    const pageBytes = 2 * kvHeads * pageSize * headDim + Math.ceil((2 * kvHeads * pageSize) / 16) * 16;
    const pool = new EmuBuffer('u8', slots * pageBytes);
    const rows = (n: number) => {
      const values = Array.from({ length: n }, (_, i) => rng.uniform(-1, 1) * 2 ** ((Math.floor(i / headDim) % 8) - 6));
      // e4m3 ties to even (and 2^-10 to 0) at scale factor 2^-6: the same codes as at factor 1.
      [448, 1.0625, 1.1875, -1.0625, 232, 3 * 2 ** -10, 2 ** -10, -0, 0, -240].forEach((x, i) => (values[i] = x * 2 ** -6));
      return EmuBuffer.from(dtype, values);
    };
    const order = rng.shuffle([...Array(tokens).keys()]);
    jobs.launch(
      kvAppendFp8Kernel,
      { dtype, headDim, pageSize },
      {
        k: rows(tokens * kvHeads * headDim),
        v: rows(tokens * kvHeads * headDim),
        slots: EmuBuffer.from(
          'i32',
          order.map((t) => Math.floor(t / pageSize)),
        ),
        offsets: EmuBuffer.from(
          'i32',
          order.map((t) => t % pageSize),
        ),
        pool,
        numTokens: tokens,
        numKvHeads: kvHeads,
      },
    );
    jobs.output(pool, `kv_append_fp8 ${dtype} hd${headDim} ps${pageSize}`, TOL.exact);
    for (const variant of ['cuboid-max', 'sphere'] as const) {
      const digests = new EmuBuffer(dtype, 3 * kvHeads * 2 * headDim);
      jobs.launch(
        pageDigestFp8Kernel,
        { dtype, headDim, pageSize, variant },
        { pool, slots: EmuBuffer.from('i32', [6, 1, 3]), rows: EmuBuffer.from('i32', [2, 0, 1]), digests, numPages: 3, numKvHeads: kvHeads },
      );
      jobs.output(digests, `page_digest_fp8 ${variant} ${dtype}`, TOL[dtype]);
    }
    const batch = 2;
    const maxPages = 5;
    const pages = {
      pool,
      pageTable: EmuBuffer.from(
        'i32',
        Array.from({ length: batch * lists * maxPages }, () => rng.int(slots)),
      ),
      pageCounts: EmuBuffer.from(
        'i32',
        Array.from({ length: batch * lists }, () => 1 + rng.int(maxPages)),
      ),
      lastPageLens: EmuBuffer.from(
        'i32',
        Array.from({ length: batch * lists }, () => 1 + rng.int(pageSize)),
      ),
    };
    const q = EmuBuffer.from(dtype, rng.array(batch * heads * headDim, -2, 2));
    const shape = { batch, numHeads: heads, numKvHeads: kvHeads, numLists: lists, maxPages, scale: 1 / Math.sqrt(headDim) };
    const partialOut = new EmuBuffer('f32', batch * heads * splits * headDim);
    const partialLse = new EmuBuffer('f32', batch * heads * splits);
    const group = gcd(heads / kvHeads, heads / lists);
    // The last split of each block of heads merges them (its counts start at 0).
    const out = new EmuBuffer(dtype, batch * heads * headDim);
    const lse = new EmuBuffer('f32', batch * heads);
    const counters = new EmuBuffer('i32', (batch * heads) / group);
    jobs.launch(
      pagedDecodeFp8Kernel,
      { dtype, headDim, pageSize, group },
      { q, ...pages, partialOut, partialLse, out, lse, counters, ...shape, numSplits: splits, splitTokens: splitTokensFor(maxPages * pageSize, splits) },
    );
    jobs.output(out, `paged_decode_fp8 (merged by its last splits) ${dtype} hd${headDim} ps${pageSize} g${group}`, TOL[dtype]);
    const scores = new EmuBuffer('f32', batch * lists * maxPages * pageSize);
    jobs.launch(pagedTokenScoresFp8Kernel, { dtype, headDim, pageSize }, { q, ...pages, lse, scores, ...shape });
    jobs.output(scores, `paged_token_scores_fp8 ${dtype}`, TOL.f32);
    // A prefill chunk of 30 rows from position 40 over the sequence's pages, in a shuffled order of slots.
    const [first, count, chunkSplits] = [40, 30, 2];
    const chunkOut = new EmuBuffer('f32', count * heads * chunkSplits * headDim);
    const chunkLse = new EmuBuffer('f32', count * heads * chunkSplits);
    jobs.launch(
      pagedPrefillFp8Kernel,
      { dtype, headDim, pageSize },
      {
        q: EmuBuffer.from(dtype, rng.array(count * heads * headDim, -2, 2)),
        pool,
        pageSlots: EmuBuffer.from('i32', rng.shuffle([...Array(slots).keys()])),
        partialOut: chunkOut,
        partialLse: chunkLse,
        numRows: count,
        start: first,
        numHeads: heads,
        numKvHeads: kvHeads,
        numSplits: chunkSplits,
        scale: 1 / Math.sqrt(headDim),
      },
    );
    const chunk = new EmuBuffer(dtype, count * heads * headDim);
    const chunkRowLse = new EmuBuffer('f32', count * heads);
    jobs.launch(
      pagedDecodeMergeKernel,
      { dtype, headDim },
      { partialOut: chunkOut, partialLse: chunkLse, out: chunk, lse: chunkRowLse, rows: count * heads, numSplits: chunkSplits },
    );
    jobs.output(chunk, `paged_prefill_fp8 + merge ${dtype} hd${headDim} ps${pageSize}`, TOL[dtype]);
  }
}

/** Page tables [rows, 3, pages] for a decode batch: per row, resident sinks and window around `count` candidates from `first`. */
function selectionTables(
  rng: Rng,
  shapes: readonly (readonly [pages: number, first: number, count: number, residentChance: number])[],
  tablePages: number,
  digestRows: number,
) {
  const tables = new Int32Array((shapes.length + 1) * 3 * tablePages).fill(-7);
  const rows: number[] = [];
  let slot = 0;
  let host = 0;
  shapes.forEach(([pages, first, count, chance], r) => {
    // Batch row r uses table row r + 1: table row 0 stays untouched.
    const base = (r + 1) * 3 * tablePages;
    for (let p = 0; p < pages; p++) {
      const candidate = p >= first && p < first + count;
      tables[base + p] = !candidate || rng.next() < chance ? slot++ : -1;
      tables[base + tablePages + p] = rng.int(digestRows);
      tables[base + 2 * tablePages + p] = host++;
    }
    rows.push(r + 1, pages, first, count, 1 + rng.int(16));
  });
  return { tables, rows, slots: slot, hosts: host };
}

/**
 * The decode step's device-side selection: estimate_rows, select_resident on its scores,
 * recall_listed of the copy list and scatter_i32. Queries and digests are small
 * multiples of 1/4 and 1/8, so every estimate is exact (no rounding, fused or not) and
 * the plans compare exactly.
 */
function deviceSelection(jobs: GpuJobs, rng: Rng): void {
  const headDim = 64;
  const heads = 4;
  const kvHeads = 2;
  const digestRows = 12;
  const tablePages = 40;
  const shapes = [
    [36, 2, 30, 0.5],
    [5, 0, 0, 0],
    [22, 1, 18, 0.4],
  ] as const;
  const batch = shapes.length;
  for (const [variant, groups] of [
    ['cuboid-max', 1],
    ['cuboid-mean', 2],
  ] as const) {
    const { tables, rows, slots, hosts } = selectionTables(rng, shapes, tablePages, digestRows);
    const k = 5;
    const maxCandidates = 32;
    const maxPages = 40;
    const { scores, tablesBuf, rowsBuf } = candidateScores(
      jobs,
      rng,
      { variant, headDim, heads, kvHeads, digestRows, tablePages, groups, maxCandidates },
      tables,
      rows,
    );
    // (The scores themselves are not compared: JSON, which holds the expectations, has no -Infinity.)
    const lists = selectResidentJob(jobs, { scores, tablesBuf, rowsBuf, batch, groups, k, maxCandidates, maxPages, tablePages }, `g${groups}`);
    const pageWords = 4 * 16;
    const host = EmuBuffer.from(
      'u32',
      Array.from({ length: hosts * pageWords }, () => rng.int(2 ** 32)),
    );
    const device = EmuBuffer.from(
      'u32',
      Array.from({ length: slots * pageWords }, () => rng.int(2 ** 32)),
    );
    jobs.launch(
      recallListedKernel,
      {},
      { hostPool: host, devicePool: device, copies: lists.copies, batch, maxCopies: k * groups, pageWords },
      { mapped: ['hostPool'] },
    );
    jobs.output(device, `recall_listed (mapped host memory) g${groups}`, TOL.exact);
  }
  const target = EmuBuffer.from(
    'i32',
    Array.from({ length: 700 }, (_, i) => i),
  );
  const at = rng.shuffle(Array.from({ length: 700 }, (_, i) => i)).slice(0, 300);
  jobs.launch(
    scatterI32Kernel,
    {},
    {
      target,
      updates: EmuBuffer.from(
        'i32',
        at.flatMap((i) => [i, -i]),
      ),
      n: at.length,
      length: 700,
    },
  );
  jobs.output(target, 'scatter_i32', TOL.exact);
}

/**
 * select_resident on rows longer than the candidates its block holds in registers (HELD x
 * 512 = 4,096), so every loop reads them chunk by chunk: one row with few residents (the
 * wanted pages' search runs) and one with many (the victims' search runs). 12 digests
 * make long runs of ties, which the low half of the key breaks.
 */
function selectionOverChunks(jobs: GpuJobs, rng: Rng): void {
  const headDim = 64;
  const heads = 4;
  const kvHeads = 2;
  const digestRows = 12;
  const shapes = [
    [4400, 2, 4300, 0.003],
    [4300, 1, 4200, 0.5],
  ] as const;
  const tablePages = 4400;
  const batch = shapes.length;
  const groups = 1;
  const k = 300;
  const maxCandidates = 4300;
  const maxPages = 4400;
  const { tables, rows } = selectionTables(rng, shapes, tablePages, digestRows);
  const { scores, tablesBuf, rowsBuf } = candidateScores(
    jobs,
    rng,
    { variant: 'cuboid-max', headDim, heads, kvHeads, digestRows, tablePages, groups, maxCandidates },
    tables,
    rows,
  );
  selectResidentJob(jobs, { scores, tablesBuf, rowsBuf, batch, groups, k, maxCandidates, maxPages, tablePages }, 'over chunks');
}

/** select_resident on candidateScores' buffers; asks for its lists and the updated tables back (labelled `label`) and returns the lists. */
function selectResidentJob(
  jobs: GpuJobs,
  a: {
    readonly scores: EmuBuffer;
    readonly tablesBuf: EmuBuffer;
    readonly rowsBuf: EmuBuffer;
    readonly batch: number;
    readonly groups: number;
    readonly k: number;
    readonly maxCandidates: number;
    readonly maxPages: number;
    readonly tablePages: number;
  },
  label: string,
): Record<'pageTable' | 'pageCounts' | 'lastPageLens' | 'copies' | 'plan', EmuBuffer> {
  const width = 1 + 2 * a.k * a.groups;
  const lists = {
    pageTable: new EmuBuffer('i32', a.batch * a.maxPages),
    pageCounts: new EmuBuffer('i32', a.batch),
    lastPageLens: new EmuBuffer('i32', a.batch),
    copies: new EmuBuffer('i32', a.batch * width),
    plan: new EmuBuffer('i32', a.batch * width),
  };
  jobs.launch(
    selectResidentKernel,
    {},
    {
      scores: a.scores,
      rows: a.rowsBuf,
      tables: a.tablesBuf,
      flags: new EmuBuffer('i32', a.batch * a.maxCandidates),
      best: new EmuBuffer('f32', a.batch * a.maxCandidates),
      ...lists,
      batch: a.batch,
      groups: a.groups,
      k: a.k,
      maxCandidates: a.maxCandidates,
      maxPages: a.maxPages,
      tablePages: a.tablePages,
    },
  );
  for (const [name, buf] of Object.entries(lists)) jobs.output(buf, `select_resident ${label} ${name}`, TOL.exact);
  jobs.output(a.tablesBuf, `select_resident ${label} tables`, TOL.exact);
  return lists;
}

/**
 * estimate_rows over selection tables (selectionTables) with queries and digests of small
 * exact fractions (ties among the scores): the scores [batch, groups, maxCandidates] that
 * select_resident and select_attend rank, and the tables' and rows' buffers they read.
 */
function candidateScores(
  jobs: GpuJobs,
  rng: Rng,
  o: {
    readonly variant: 'cuboid-max' | 'cuboid-mean';
    readonly headDim: number;
    readonly heads: number;
    readonly kvHeads: number;
    readonly digestRows: number;
    readonly tablePages: number;
    readonly groups: number;
    readonly maxCandidates: number;
  },
  tables: ArrayLike<number>,
  rows: ArrayLike<number>,
): { scores: EmuBuffer; tablesBuf: EmuBuffer; rowsBuf: EmuBuffer } {
  const batch = rows.length / 5;
  const frac = (scale: number) => (rng.int(17) - 8) / scale;
  const scores = new EmuBuffer('f32', batch * o.groups * o.maxCandidates);
  const tablesBuf = EmuBuffer.from('i32', tables);
  const rowsBuf = EmuBuffer.from('i32', rows);
  jobs.launch(
    estimateRowsKernel,
    { dtype: 'f16', headDim: o.headDim, variant: o.variant },
    {
      q: EmuBuffer.from(
        'f16',
        Array.from({ length: batch * o.heads * o.headDim }, () => frac(4)),
      ),
      digests: EmuBuffer.from(
        'f16',
        Array.from({ length: o.digestRows * o.kvHeads * 2 * o.headDim }, () => frac(8)),
      ),
      tables: tablesBuf,
      rows: rowsBuf,
      out: scores,
      batch,
      maxCandidates: o.maxCandidates,
      tablePages: o.tablePages,
      numHeads: o.heads,
      numKvHeads: o.kvHeads,
      groups: o.groups,
      pagesPerBlock: estimatePagesPerBlock(o.heads, o.kvHeads, o.headDim),
    },
  );
  return { scores, tablesBuf, rowsBuf };
}

/**
 * Quest's lists: estimate_rows with a group per head, then select_attend (a block per
 * (row, head)); every page resident, candidates every page but the last (none in a row
 * under budget). Exact small fractions make ties, which go to the lower page.
 */
function questSelection(jobs: GpuJobs, rng: Rng): void {
  const headDim = 64;
  const heads = 4;
  const kvHeads = 2;
  const digestRows = 12;
  const tablePages = 700;
  const shapes = [
    [36, 0, 35, 1],
    [5, 0, 0, 1],
    [650, 0, 649, 1],
  ] as const;
  const batch = shapes.length;
  const groups = heads;
  const k = 7;
  const maxCandidates = 650;
  const maxPages = 8;
  const { tables, rows } = selectionTables(rng, shapes, tablePages, digestRows);
  const { scores, tablesBuf, rowsBuf } = candidateScores(
    jobs,
    rng,
    { variant: 'cuboid-max', headDim, heads, kvHeads, digestRows, tablePages, groups, maxCandidates },
    tables,
    rows,
  );
  const lists = {
    pageTable: new EmuBuffer('i32', batch * groups * maxPages),
    pageCounts: new EmuBuffer('i32', batch * groups),
    lastPageLens: new EmuBuffer('i32', batch * groups),
  };
  jobs.launch(
    selectAttendKernel,
    {},
    {
      scores,
      rows: rowsBuf,
      tables: tablesBuf,
      flags: new EmuBuffer('i32', batch * groups * maxCandidates),
      ...lists,
      batch,
      groups,
      k,
      maxCandidates,
      maxPages,
      tablePages,
    },
  );
  for (const [name, buf] of Object.entries(lists)) jobs.output(buf, `select_attend ${name}`, TOL.exact);
}

/** Timings on zero-filled data (contents do not change the work): a long-context decode (merging its splits), the merge kernel, a prefill and its summed key statistic. */
export function buildTimings(jobs: GpuJobs): void {
  const batch = 8;
  const heads = 32;
  const kvHeads = 8;
  const headDim = 128;
  const pageSize = 32;
  const pages = 128;
  // 8 splits of 512 tokens for these 64 (batch, KV head) pairs: one wave of blocks on a 132-SM H100/H200.
  const { splits, splitTokens } = pagedDecodeSplits({ tokens: pages * pageSize });
  jobs.launch(
    pagedDecodeKernel,
    { dtype: 'f16', headDim, pageSize, group: 4 },
    {
      pageTable: EmuBuffer.from(
        'i32',
        Array.from({ length: batch * pages }, (_, i) => i),
      ),
      pageCounts: EmuBuffer.from('i32', Array(batch).fill(pages)),
      lastPageLens: EmuBuffer.from('i32', Array(batch).fill(pageSize)),
      batch,
      numHeads: heads,
      numKvHeads: kvHeads,
      numLists: 1,
      maxPages: pages,
      numSplits: splits,
      splitTokens,
      scale: 0.088,
    },
    {
      emulate: false,
      time: 50,
      zeroed: {
        q: batch * heads * headDim * 2,
        pool: batch * pages * 2 * kvHeads * pageSize * headDim * 2,
        partialOut: batch * heads * splits * headDim * 4,
        partialLse: batch * heads * splits * 4,
        out: batch * heads * headDim * 2,
        lse: batch * heads * 4,
        counters: ((batch * heads) / 4) * 4,
      },
    },
  );
  // paged_prefill's merge (paged_decode merges its own splits) at the same size.
  jobs.launch(
    pagedDecodeMergeKernel,
    { dtype: 'f16', headDim },
    { rows: batch * heads, numSplits: splits },
    {
      emulate: false,
      time: 50,
      zeroed: {
        partialOut: batch * heads * splits * headDim * 4,
        partialLse: batch * heads * splits * 4,
        out: batch * heads * headDim * 2,
        lse: batch * heads * 4,
      },
    },
  );
  selectionTimings(jobs);
  const t = 4096;
  for (const stages of [1, 2] as const) {
    jobs.launch(
      causalPrefillKernel,
      { dtype: 'f16', headDim, stages },
      { numTokens: t, numHeads: heads, numKvHeads: kvHeads, scale: 0.088 },
      {
        emulate: false,
        time: 10,
        zeroed: { q: t * heads * headDim * 2, k: t * kvHeads * headDim * 2, v: t * kvHeads * headDim * 2, out: t * heads * headDim * 2, lse: t * heads * 4 },
      },
    );
  }
  // H2O's statistic over the same prompt: the prefill's q . k products once more, on tensor
  // cores (half its matrix-product work: about half its time if it keeps the prefill's rate).
  jobs.launch(
    prefillKeySumsKernel,
    { dtype: 'f16', headDim },
    { numTokens: t, numHeads: heads, numKvHeads: kvHeads, scale: 0.088 },
    { emulate: false, time: 10, zeroed: { q: t * heads * headDim * 2, k: t * kvHeads * headDim * 2, lse: t * heads * 4, partial: heads * t * 4 } },
  );
}

/**
 * The decode step's selection at the 8B shape (32 heads, 8 KV heads, hd 128) for a batch
 * of 8 at ~30k tokens: 960 candidates, k 29, one group. select_resident's first launch
 * recalls two pages per row; the timed re-launches find the plan applied (no recalls),
 * so they time the top-k search and the lists.
 */
function selectionTimings(jobs: GpuJobs): void {
  const rng = new Rng(7);
  const batch = 8;
  const count = 960;
  const k = 29;
  const pages = count + 20;
  const tablePages = pages;
  const tables = new Int32Array((batch + 1) * 3 * tablePages);
  const rows: number[] = [];
  const scores = new Float32Array(batch * count);
  for (let r = 0; r < batch; r++) {
    for (let i = 0; i < count; i++) scores[r * count + i] = rng.uniform(0, 10);
    const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => scores[r * count + b] - scores[r * count + a]);
    // Last step's choice: the top k but for two, which fell just below it.
    const resident = new Set([...order.slice(0, k - 2), order[k + 3], order[k + 7]]);
    const base = (r + 1) * 3 * tablePages;
    let slot = 0;
    for (let p = 0; p < pages; p++) {
      const candidate = p >= 4 && p < 4 + count;
      tables[base + p] = !candidate || resident.has(p - 4) ? slot++ : -1;
      tables[base + 2 * tablePages + p] = p;
    }
    rows.push(r + 1, pages, 4, count, 7);
  }
  const maxPages = 20 + k;
  const width = 1 + 2 * k;
  jobs.launch(
    selectResidentKernel,
    {},
    {
      scores: EmuBuffer.from('f32', scores),
      rows: EmuBuffer.from('i32', rows),
      tables: EmuBuffer.from('i32', tables),
      flags: new EmuBuffer('i32', batch * count),
      best: new EmuBuffer('f32', batch * count),
      pageTable: new EmuBuffer('i32', batch * maxPages),
      pageCounts: new EmuBuffer('i32', batch),
      lastPageLens: new EmuBuffer('i32', batch),
      copies: new EmuBuffer('i32', batch * width),
      plan: new EmuBuffer('i32', batch * width),
      batch,
      groups: 1,
      k,
      maxCandidates: count,
      maxPages,
      tablePages,
    },
    { emulate: false, time: 200 },
  );
  const heads = 32;
  const kvHeads = 8;
  const headDim = 128;
  jobs.launch(
    estimateRowsKernel,
    { dtype: 'f16', headDim, variant: 'cuboid-max' },
    {
      rows: EmuBuffer.from('i32', rows),
      batch,
      maxCandidates: count,
      tablePages,
      numHeads: heads,
      numKvHeads: kvHeads,
      groups: 1,
      pagesPerBlock: estimatePagesPerBlock(heads, kvHeads, headDim),
    },
    {
      emulate: false,
      time: 200,
      zeroed: { q: batch * heads * headDim * 2, digests: kvHeads * 2 * headDim * 2, tables: (batch + 1) * 3 * tablePages * 4, out: batch * count * 4 },
    },
  );
  digestReadTiming(jobs);
}

/**
 * estimate_rows as a decode step at the Llama-2-7B shape runs it (batch 4, 32 heads and
 * KV heads, 960 candidates of 32 tokens at 30k): every candidate its own digest row, so
 * the launch reads 4 x 960 x 16 KB of f16 digests from HBM (the timing above reads one row).
 */
function digestReadTiming(jobs: GpuJobs): void {
  const [batch, count, heads, headDim] = [4, 960, 32, 128];
  const tablePages = count;
  const tables = new Int32Array((batch + 1) * 3 * tablePages);
  const rows: number[] = [];
  for (let r = 0; r < batch; r++) {
    for (let p = 0; p < count; p++) tables[((r + 1) * 3 + 1) * tablePages + p] = r * count + p;
    rows.push(r + 1, count, 0, count, 7);
  }
  jobs.launch(
    estimateRowsKernel,
    { dtype: 'f16', headDim, variant: 'cuboid-mean' },
    {
      rows: EmuBuffer.from('i32', rows),
      tables: EmuBuffer.from('i32', tables),
      batch,
      maxCandidates: count,
      tablePages,
      numHeads: heads,
      numKvHeads: heads,
      groups: 1,
      pagesPerBlock: estimatePagesPerBlock(heads, heads, headDim),
    },
    {
      emulate: false,
      time: 50,
      zeroed: { q: batch * heads * headDim * 2, digests: batch * count * heads * 2 * headDim * 2, out: batch * count * 4 },
    },
  );
}
