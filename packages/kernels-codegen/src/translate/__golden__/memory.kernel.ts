// Golden fixture: shared and register arrays, vector accesses, atomics, loops.
import { atomicAdd, blockDim, blockIdx, f32, local, offset, shared, syncthreads, threadIdx, vload, vstore, type Global, type GlobalIn, type i32 } from '../../dsl/index.js';

export interface MemorySpec {
  readonly tokens: number;
  readonly vec: number;
}

function sumRange(p: GlobalIn<f32>, n: i32): f32 {
  let s: f32 = 0;
  let k = 0;
  while (k < n) {
    s += p[k];
    k++;
  }
  return s;
}

export function memory(spec: MemorySpec, src: GlobalIn<f32>, dst: Global<f32>, counter: Global<i32>, n: i32): void {
  const tile = shared<f32>(spec.tokens * spec.vec);
  const regs = local<f32>(spec.vec);
  const base = blockIdx.x * spec.tokens * spec.vec;
  for (let t = threadIdx.x; t < spec.tokens; t += blockDim.x) {
    vload(regs, src, base + t * spec.vec);
    for (let e = 0; e < spec.vec; e++) regs[e] = regs[e] * 2;
    vstore(tile, t * spec.vec, regs);
  }
  syncthreads();
  let total: f32 = 0;
  for (let t = 0; t < spec.tokens; t++) {
    if (tile[t * spec.vec] < 0) continue;
    if (total > 1000) break;
    total += tile[t * spec.vec];
  }
  do {
    total = total * 0.5;
  } while (total > 10);
  total += sumRange(offset(src, base), n);
  if (threadIdx.x === 0) {
    dst[blockIdx.x] = total;
    atomicAdd(counter, 0, 1);
  }
}
