// Golden fixture: cp.async, ldmatrix and mma.sync fragments (one 16x8x16 product per warp).
import { cpAsync16, cpAsyncCommit, cpAsyncWait, ldmatrixX4, local, mmaM16N8K16, offset, shared, syncthreads, threadIdx, type Float16, type Global, type GlobalIn, type f32 } from '../../dsl/index.js';

export function tile<T extends Float16>(_spec: object, a: GlobalIn<T>, b: GlobalIn<T>, d: Global<f32>): void {
  const lane = threadIdx.x;
  const sA = shared<T>(16 * 16);
  const sB = shared<T>(16 * 16);
  cpAsync16(sA, lane * 8, a, lane * 8);
  cpAsync16(sB, lane * 8, b, lane * 8);
  cpAsyncCommit();
  cpAsyncWait(0);
  syncthreads();
  const fa = local<T>(8);
  const fb = local<T>(8);
  const acc = local<f32>(8);
  for (let e = 0; e < 8; e++) acc[e] = 0;
  const j = lane >> 3;
  ldmatrixX4(fa, sA, ((j & 1) * 8 + (lane & 7)) * 16 + (j >> 1) * 8);
  ldmatrixX4(fb, sB, ((j >> 1) * 8 + (lane & 7)) * 16 + (j & 1) * 8);
  mmaM16N8K16(acc, fa, fb, acc);
  mmaM16N8K16(offset(acc, 4), fa, offset(fb, 4), offset(acc, 4));
  for (let e = 0; e < 8; e++) d[lane * 8 + e] = acc[e];
}
