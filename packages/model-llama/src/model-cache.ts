import type { DecodeStep, KvCache, PrefillChunk, Tensor } from '@arkvale/core';
import type { AttendRef } from './forward.js';

/** What a model's caller asks of its cache beyond the layers: admission, steps, pools, statistics (KvCache's own). */
type CacheControl = Pick<
  KvCache,
  | 'geometry'
  | 'options'
  | 'policy'
  | 'store'
  | 'pageSize'
  | 'sequenceIds'
  | 'close'
  | 'admit'
  | 'admitChunked'
  | 'prefillPeak'
  | 'chunkedPrefillPeak'
  | 'prefixHit'
  | 'cachedTokens'
  | 'prefixStats'
  | 'promptRemaining'
  | 'prefillChunkNeeds'
  | 'beginPrefillChunk'
  | 'has'
  | 'free'
  | 'fork'
  | 'parkNeeds'
  | 'park'
  | 'resumeNeeds'
  | 'resume'
  | 'graphKey'
  | 'canSkipForward'
  | 'skipStep'
  | 'beginStep'
  | 'stepNeeds'
  | 'clearPrefixCache'
  | 'stats'
>;

/**
 * The KV cache a model's forward pass attends through: one `KvCache`, or one per
 * tensor-parallel rank used together (`RankedKvCache`). The layer methods take the
 * rank whose shard `q`, `k` and `v` are (`RowSegment.attend`'s); a `KvCache` has one
 * rank and ignores it.
 */
export interface ModelCache extends CacheControl {
  prefillLayer(id: number, layer: number, q: Tensor, k: Tensor, v: Tensor, scale: number, rank?: number): Tensor;
  prefillChunkLayer(chunk: PrefillChunk, layer: number, q: Tensor, k: Tensor, v: Tensor, scale: number, rank?: number): Tensor;
  decodeLayer(step: DecodeStep, layer: number, q: Tensor, k: Tensor, v: Tensor, scale: number, rank?: number): Tensor;
  /** How ranks held by workers name what a segment attends through (`RowSegment.ref`); absent or undefined where every rank is in this thread. */
  attendRef?(on: { readonly seq: number } | { readonly chunk: PrefillChunk } | { readonly step: DecodeStep }): AttendRef | undefined;
}
