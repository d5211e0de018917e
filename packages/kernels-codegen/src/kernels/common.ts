/**
 * Helpers shared by the kernel library: warp and block reductions. Translated into
 * every kernel that calls them (as __device__ __forceinline__ functions).
 */
import { blockDim, shflXor, syncthreads, threadIdx, type Shared, type f32, type i32 } from '../dsl/index.js';

/** Sum over the 32 lanes of a warp; every lane gets the total. */
export function warpSum(v: f32): f32 {
  for (let o = 16; o > 0; o >>= 1) v += shflXor(v, o);
  return v;
}

/** Maximum over the 32 lanes of a warp; every lane gets it. */
export function warpMax(v: f32): f32 {
  for (let o = 16; o > 0; o >>= 1) v = Math.max(v, shflXor(v, o));
  return v;
}

/**
 * Sum over the block (1-D, a whole number of warps); every thread gets the total,
 * summed in warp order so the result does not depend on scheduling. `scratch` holds
 * one f32 per warp and may be reused right after the call.
 */
export function blockSum(v: f32, scratch: Shared<f32>): f32 {
  const warp = threadIdx.x >> 5;
  v = warpSum(v);
  if ((threadIdx.x & 31) === 0) scratch[warp] = v;
  syncthreads();
  let total: f32 = 0;
  for (let w = 0; w < blockDim.x >> 5; w++) total += scratch[w];
  // Everyone has read the partials before anyone may overwrite them.
  syncthreads();
  return total;
}

/** Maximum over the block, like blockSum. */
export function blockMax(v: f32, scratch: Shared<f32>): f32 {
  const warp = threadIdx.x >> 5;
  v = warpMax(v);
  if ((threadIdx.x & 31) === 0) scratch[warp] = v;
  syncthreads();
  let best: f32 = -Infinity;
  for (let w = 0; w < blockDim.x >> 5; w++) best = Math.max(best, scratch[w]);
  syncthreads();
  return best;
}

/** Integer sum over the block, like blockSum (counts never depend on order). */
export function blockCount(v: i32, scratch: Shared<i32>): i32 {
  const warp = threadIdx.x >> 5;
  for (let o = 16; o > 0; o >>= 1) v += shflXor(v, o);
  if ((threadIdx.x & 31) === 0) scratch[warp] = v;
  syncthreads();
  let total = 0;
  for (let w = 0; w < blockDim.x >> 5; w++) total += scratch[w];
  syncthreads();
  return total;
}
