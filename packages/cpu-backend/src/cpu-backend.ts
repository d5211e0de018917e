import {
  ReferenceBackend,
  RefFp8KvStorage,
  RefTensor,
  asRef,
  gatherDequantized,
  type CausalAttentionArgs,
  type PagedAttentionArgs,
  type Tensor,
} from '@arkvale/core';
import { loadNative, type KeyStatsCode, type NativeAddon } from './native.js';
import { asKvStorage, causalDims, matmulDims, pagedDims } from './validate.js';

export interface CpuBackendOptions {
  /**
   * false runs everything on the inherited reference code even when the addon
   * is available (for comparisons). Default true.
   */
  readonly useNative?: boolean;
}

const KEY_STATS: Record<'none' | 'sum' | 'last', KeyStatsCode> = { none: 0, sum: 1, last: 2 };

/**
 * The reference backend with its hot operations (matmul, causal and paged
 * attention) replaced by native multi-threaded kernels. Tensors, KV storage and
 * every other operation are the reference backend's, so the core's page manager
 * works unchanged. Without the addon every operation falls back to the
 * reference code; `cpuBackendInfo()` says which is in use and why.
 */
export class CpuBackend extends ReferenceBackend {
  override readonly name: string = 'cpu';
  /** Products of fewer than 16 rows take the per-row path (native/gemm.cc): each row's dot products alone. */
  readonly invariantProducts: { readonly rows: number; readonly pad: boolean } = { rows: 8, pad: false };
  /** The addon in use, or undefined when running on the reference code. */
  private readonly addon: NativeAddon | undefined;

  constructor(options: CpuBackendOptions = {}) {
    super();
    this.addon = options.useNative === false ? undefined : loadNative().addon;
  }

  /** True when the native kernels are in use. */
  get native(): boolean {
    return this.addon !== undefined;
  }

  // Each override validates before choosing the native or the reference path, so
  // a bad call fails the same way whether or not the addon is built.

  override matmul(x: Tensor, w: Tensor): Tensor {
    const xr = asRef(x),
      wr = asRef(w);
    const { m, n, k } = matmulDims(xr, wr);
    if (!this.addon) return super.matmul(x, w);
    const out = new Float32Array(m * n);
    this.addon.matmul(xr.f32, wr.f32, out, m, n, k);
    return new RefTensor(out, [m, n], 'f32');
  }

  override causalAttention(args: CausalAttentionArgs): { out: Tensor; keyScores?: Tensor } {
    const q = asRef(args.q),
      k = asRef(args.k),
      v = asRef(args.v);
    const { tokens, heads, kvHeads, headDim } = causalDims(q, k, v);
    if (!this.addon) return super.causalAttention(args);
    const out = new Float32Array(q.data.length);
    const keyScores = args.keyScores ? new Float32Array(tokens) : null;
    const stats = KEY_STATS[args.keyScores ?? 'none'];
    this.addon.causalAttention(q.f32, k.f32, v.f32, out, keyScores, tokens, heads, kvHeads, headDim, args.scale, stats);
    return {
      out: new RefTensor(out, q.shape, 'f32'),
      keyScores: keyScores ? new RefTensor(keyScores, [tokens], 'f32') : undefined,
    };
  }

  override pagedAttention(args: PagedAttentionArgs): { out: Tensor; tokenScores?: Tensor } {
    const storage = asKvStorage(args.storage);
    const q = asRef(args.q),
      table = asRef(args.pageTable),
      counts = asRef(args.pageCounts),
      lasts = asRef(args.lastPageLens);
    const { batch, groups, maxPages } = pagedDims(q, storage, table, counts, lasts);
    if (!this.addon) return super.pagedAttention(args);
    // fp8 pages: the listed pages dequantized (the reference's rounding, kv-fp8.ts), then the float32 kernel, so the
    // result is this kernel's over the dequantized values, bit for bit.
    const pool = storage instanceof RefFp8KvStorage ? gatherDequantized(storage, table, counts) : { storage, pageTable: table };
    const { numHeads, numKvHeads, headDim, pageSize } = storage.geometry;
    const out = new Float32Array(batch * numHeads * headDim);
    const scores = args.returnTokenScores ? new Float32Array(batch * groups * maxPages * pageSize) : null;
    this.addon.pagedAttention(
      q.f32,
      pool.storage.data,
      pool.pageTable.i32,
      counts.i32,
      lasts.i32,
      out,
      scores,
      batch,
      groups,
      maxPages,
      numHeads,
      numKvHeads,
      headDim,
      pageSize,
      args.scale,
    );
    return {
      out: new RefTensor(out, [batch, numHeads, headDim], 'f32'),
      tokenScores: scores ? new RefTensor(scores, [batch, groups, maxPages * pageSize], 'f32') : undefined,
    };
  }
}
