// Golden fixture: warp collectives, generic and spec-taking helpers, module constants.
import { ballot, blockIdx, f32, popc, shflDown, shflIdx, shflXor, syncthreads, threadIdx, WARP_SIZE, shared, type Global, type GlobalIn, type Float16, type f32 as F32, type i32 } from '../../dsl/index.js';

export interface WarpSpec {
  readonly groupWidth: number;
}

const WARPS = 2;

function groupSum(spec: WarpSpec, v: F32): F32 {
  for (let o = spec.groupWidth / 2; o > 0; o >>= 1) v += shflXor(v, o, spec.groupWidth);
  return v;
}

function load<T extends Float16>(p: GlobalIn<T>, i: i32): F32 {
  return f32(p[i]);
}

export function warp<T extends Float16>(spec: WarpSpec, x: GlobalIn<T>, out: Global<F32>, votes: Global<i32>): void {
  const lane = threadIdx.x % WARP_SIZE;
  const partial = shared<F32>(WARPS);
  const v = load(x, blockIdx.x * WARPS * WARP_SIZE + threadIdx.x);
  const s = groupSum(spec, v) + shflDown(v, 1) + shflIdx(v, 0);
  const positive = ballot(s > 0);
  if (lane === 0) {
    partial[threadIdx.x / WARP_SIZE] = s;
    votes[blockIdx.x * WARPS + threadIdx.x / WARP_SIZE] = popc(positive);
  }
  syncthreads();
  if (threadIdx.x === 0) out[blockIdx.x] = partial[0] + partial[1];
}
