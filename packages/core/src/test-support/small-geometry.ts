import type { KvGeometry } from '../config.js';

/**
 * The small geometry the cache's property tests draw: two layers, heads of 4 f32
 * elements, `headsPerKv` query heads over each of `kvHeads` KV heads.
 */
export function smallGeometry(s: { kvHeads: number; pageSize: number; headsPerKv?: number; kvDtype?: KvGeometry['kvDtype'] }): KvGeometry {
  return {
    numLayers: 2,
    numHeads: (s.headsPerKv ?? 2) * s.kvHeads,
    numKvHeads: s.kvHeads,
    headDim: 4,
    pageSize: s.pageSize,
    bytesPerElement: 4,
    ...(s.kvDtype !== undefined ? { kvDtype: s.kvDtype } : {}),
  };
}
