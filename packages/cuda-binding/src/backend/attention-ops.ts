import type { CausalAttentionArgs, ChunkAttentionArgs, PagedAttentionArgs } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';
import { pagedDecodeSplits, pagedPrefillSplits } from '@arkvale/kernels-codegen/launch';
import {
  findCausalPrefill,
  findPagedDecode,
  findPagedDecodeFp8,
  findPagedDecodeMerge,
  findPagedPrefill,
  findPagedPrefillFp8,
  findPagedTokenScores,
  findPagedTokenScoresFp8,
  findPrefillKeyScores,
  findPrefillKeySums,
  findPrefillKeySumsMerge,
} from '../generated/index.js';
import type { CudaDevice } from './device.js';
import { asStorage, isFp8 } from './kv-ops.js';
import type { CudaTensor } from './tensor.js';

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * Merges split attention exactly (paged_decode_merge): the splits' normalised outputs
 * [rows, splits, D] and log-sum-exps [rows, splits], rows = the product of `shape`
 * but its last; returns the output of `shape` and each row's log-sum-exp, and frees the
 * partials.
 */
function mergeSplits(
  d: CudaDevice,
  partialOut: CudaTensor,
  partialLse: CudaTensor,
  shape: number[],
  splits: number,
  what: string,
): { out: CudaTensor; lse: CudaTensor } {
  const headDim = shape[shape.length - 1];
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const out = d.empty(shape, d.dtype, `${what} output`);
  const lse = d.empty([rows], 'f32', `${what} log-sum-exp`);
  d.launch(d.kernels.get('paged_decode_merge', findPagedDecodeMerge, { dtype: d.dtype, headDim }), {
    partialOut: partialOut.ptr,
    partialLse: partialLse.ptr,
    out: out.ptr,
    lse: lse.ptr,
    rows,
    numSplits: splits,
  });
  d.lifetimes.dispose(partialOut);
  d.lifetimes.dispose(partialLse);
  return { out, lse };
}

/**
 * Paged decode attention: the split kernel over each list's pages, whose last split of
 * each block of heads merges them exactly (paged_decode's finishSplit, counted in the
 * device's split counters), and, for H2O and TOVA, each listed token's attention
 * probability from the merged log-sum-exp. fp8 pools use the *_fp8 kernels (same
 * arguments, same steps and splits), which dequantize on load.
 */
export function pagedAttention(d: CudaDevice, args: PagedAttentionArgs): { out: CudaTensor; tokenScores?: CudaTensor } {
  const storage = asStorage(args.storage);
  if (storage.location !== 'device') throw invalidArgument('pagedAttention reads a device pool');
  const g = storage.geometry;
  const q = d.expect(d.tensor(args.q, 'pagedAttention q'), 'pagedAttention q', [d.dtype], 3);
  const table = d.expect(d.tensor(args.pageTable, 'pagedAttention pageTable'), 'pagedAttention pageTable', ['i32'], 3);
  const counts = d.expect(d.tensor(args.pageCounts, 'pagedAttention pageCounts'), 'pagedAttention pageCounts', ['i32'], 2);
  const lasts = d.expect(d.tensor(args.lastPageLens, 'pagedAttention lastPageLens'), 'pagedAttention lastPageLens', ['i32'], 2);
  const [batch, lists, maxPages] = table.shape;
  if (q.shape[0] !== batch || q.shape[1] !== g.numHeads || q.shape[2] !== g.headDim) {
    throw invalidArgument(`pagedAttention: q must be [${batch}, ${g.numHeads}, ${g.headDim}], got [${q.shape}]`);
  }
  if (g.numHeads % lists !== 0) throw invalidArgument(`pagedAttention: ${lists} page lists do not divide ${g.numHeads} heads`);
  const group = gcd(g.numHeads / g.numKvHeads, g.numHeads / lists);
  // A fixed number of tokens a split, whatever the batch: a row's attention is the same in any batch.
  const { splits, splitTokens } = pagedDecodeSplits({ tokens: maxPages * g.pageSize, splitTokens: d.decodeSplitTokens });
  const rows = batch * g.numHeads;
  const counters = d.splitCounters();
  const headBlocks = rows / group;
  if (headBlocks > counters.shape[0]) {
    throw invalidArgument(`pagedAttention: ${headBlocks} blocks of heads, more than the ${counters.shape[0]} split counters`);
  }
  const partialOut = d.empty([rows, splits, g.headDim], 'f32', 'paged attention partial outputs');
  const partialLse = d.empty([rows, splits], 'f32', 'paged attention partial log-sum-exp');
  const shape = { batch, numHeads: g.numHeads, numKvHeads: g.numKvHeads, numLists: lists, maxPages, scale: args.scale };
  const pages = { pool: storage.ptr, pageTable: table.ptr, pageCounts: counts.ptr, lastPageLens: lasts.ptr };
  const fp8 = isFp8(g);
  const decodeSpec = { dtype: d.dtype, headDim: g.headDim, pageSize: g.pageSize, group };
  const decode = fp8 ? d.kernels.get('paged_decode_fp8', findPagedDecodeFp8, decodeSpec) : d.kernels.get('paged_decode', findPagedDecode, decodeSpec);
  const out = d.empty([batch, g.numHeads, g.headDim], d.dtype, 'paged attention output');
  const lse = d.empty([rows], 'f32', 'paged attention log-sum-exp');
  d.launch(decode, {
    q: q.ptr,
    ...pages,
    partialOut: partialOut.ptr,
    partialLse: partialLse.ptr,
    out: out.ptr,
    lse: lse.ptr,
    counters: counters.ptr,
    ...shape,
    numSplits: splits,
    splitTokens,
  });
  d.lifetimes.dispose(partialOut);
  d.lifetimes.dispose(partialLse);
  let tokenScores: CudaTensor | undefined;
  if (args.returnTokenScores) {
    tokenScores = d.empty([batch, lists, maxPages * g.pageSize], 'f32', 'token attention scores');
    const spec = { dtype: d.dtype, headDim: g.headDim, pageSize: g.pageSize };
    const scores = fp8
      ? d.kernels.get('paged_token_scores_fp8', findPagedTokenScoresFp8, spec)
      : d.kernels.get('paged_token_scores', findPagedTokenScores, spec);
    d.launch(scores, {
      q: q.ptr,
      ...pages,
      lse: lse.ptr,
      scores: tokenScores.ptr,
      ...shape,
    });
  }
  d.lifetimes.dispose(lse);
  return { out, tokenScores };
}

/**
 * A prefill chunk's causal attention over its sequence's pages on tensor cores
 * (paged_prefill: each K/V tile is read once for a block's 64 rows, where paged
 * decode reads the list once a row), its key range split to fill the GPU, and the
 * splits merged exactly. fp8 pools use paged_prefill_fp8, which dequantizes each
 * tile into shared memory before the tensor-core loop (same arguments and splits).
 */
export function chunkAttention(d: CudaDevice, args: ChunkAttentionArgs): CudaTensor {
  const storage = asStorage(args.storage);
  if (storage.location !== 'device') throw invalidArgument('chunkAttention reads a device pool');
  const g = storage.geometry;
  const q = d.expect(d.tensor(args.q, 'chunkAttention q'), 'chunkAttention q', [d.dtype], 3);
  const slots = d.expect(d.tensor(args.pageSlots, 'chunkAttention pageSlots'), 'chunkAttention pageSlots', ['i32'], 1);
  const count = q.shape[0];
  if (q.shape[1] !== g.numHeads || q.shape[2] !== g.headDim) {
    throw invalidArgument(`chunkAttention: q must be [${count}, ${g.numHeads}, ${g.headDim}], got [${q.shape}]`);
  }
  const keys = args.start + count;
  if (!Number.isInteger(args.start) || args.start < 0 || slots.shape[0] < Math.ceil(keys / g.pageSize)) {
    throw invalidArgument(`chunkAttention: ${slots.shape[0]} page slots do not cover positions 0..${keys - 1} (start ${args.start}, ${count} rows)`);
  }
  const splits = pagedPrefillSplits({ rows: count, numHeads: g.numHeads, headDim: g.headDim, keys, sms: d.multiprocessors });
  const rows = count * g.numHeads;
  const partialOut = d.empty([rows, splits, g.headDim], 'f32', 'chunk attention partial outputs');
  const partialLse = d.empty([rows, splits], 'f32', 'chunk attention partial log-sum-exp');
  const spec = { dtype: d.dtype, headDim: g.headDim, pageSize: g.pageSize };
  const kernel = isFp8(g) ? d.kernels.get('paged_prefill_fp8', findPagedPrefillFp8, spec) : d.kernels.get('paged_prefill', findPagedPrefill, spec);
  d.launch(kernel, {
    q: q.ptr,
    pool: storage.ptr,
    pageSlots: slots.ptr,
    partialOut: partialOut.ptr,
    partialLse: partialLse.ptr,
    numRows: count,
    start: args.start,
    numHeads: g.numHeads,
    numKvHeads: g.numKvHeads,
    numSplits: splits,
    scale: args.scale,
  });
  const { out, lse } = mergeSplits(d, partialOut, partialLse, [count, g.numHeads, g.headDim], splits, 'chunk attention');
  d.lifetimes.dispose(lse);
  return out;
}

/** causal_prefill with the device's stages, or one stage where two need more shared memory than the GPU has (sm_86, sm_89). */
function causalPrefillKernel(d: CudaDevice, headDim: number) {
  if (d.prefillStages === 2) {
    const two = d.kernels.get('causal_prefill', findCausalPrefill, { dtype: d.dtype, headDim, stages: 2 });
    if (two.dynamicSharedBytes <= d.maxSharedPerBlock) return two;
  }
  return d.kernels.get('causal_prefill', findCausalPrefill, { dtype: d.dtype, headDim, stages: 1 });
}

/** Causal prefill attention on tensor cores, and the per-key statistics the token policies and ArkVale's prefill selection need. */
export function causalAttention(d: CudaDevice, args: CausalAttentionArgs): { out: CudaTensor; keyScores?: CudaTensor } {
  const q = d.expect(d.tensor(args.q, 'causalAttention q'), 'causalAttention q', [d.dtype], 3);
  const k = d.expect(d.tensor(args.k, 'causalAttention k'), 'causalAttention k', [d.dtype], 3);
  const v = d.expect(d.tensor(args.v, 'causalAttention v'), 'causalAttention v', [d.dtype], 3);
  const [tokens, heads, headDim] = q.shape;
  const kvHeads = k.shape[1];
  if (k.shape[0] !== tokens || v.shape[0] !== tokens || k.shape[2] !== headDim || v.shape[1] !== kvHeads || heads % kvHeads !== 0) {
    throw invalidArgument(`causalAttention: q [${q.shape}], k [${k.shape}] and v [${v.shape}] do not fit together`);
  }
  const out = d.empty(q.shape, d.dtype, 'causal attention output');
  const lse = d.empty([tokens, heads], 'f32', 'causal attention log-sum-exp');
  const shape = { numTokens: tokens, numHeads: heads, numKvHeads: kvHeads, scale: args.scale };
  d.launch(causalPrefillKernel(d, headDim), {
    q: q.ptr,
    k: k.ptr,
    v: v.ptr,
    out: out.ptr,
    lse: lse.ptr,
    ...shape,
  });
  let keyScores: CudaTensor | undefined;
  if (args.keyScores) {
    keyScores = d.empty([tokens], 'f32', 'prefill key scores');
    const spec = { dtype: d.dtype, headDim };
    if (args.keyScores === 'sum') {
      // H2O's column sums of the softmax: causal_prefill's tensor-core loop again with keys
      // and queries swapped, one sum per (head, key) from the saved lse, then the heads'
      // mean in head order (deterministic: no atomics).
      const partial = d.empty([heads, tokens], 'f32', 'prefill key sums per head');
      d.launch(d.kernels.get('prefill_key_sums', findPrefillKeySums, spec), {
        q: q.ptr,
        k: k.ptr,
        lse: lse.ptr,
        partial: partial.ptr,
        ...shape,
      });
      d.launch(d.kernels.get('prefill_key_sums_merge', findPrefillKeySumsMerge, {}), {
        partial: partial.ptr,
        scores: keyScores.ptr,
        numTokens: tokens,
        numHeads: heads,
      });
      d.lifetimes.dispose(partial);
    } else {
      d.launch(d.kernels.get('prefill_key_scores', findPrefillKeyScores, spec), {
        q: q.ptr,
        k: k.ptr,
        lse: lse.ptr,
        scores: keyScores.ptr,
        ...shape,
      });
    }
  }
  d.lifetimes.dispose(lse);
  return { out, keyScores };
}
