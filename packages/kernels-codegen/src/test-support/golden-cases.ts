/**
 * The translator's golden cases: DSL fixtures under __golden__ and the CUDA they must
 * translate to. Shared by the golden test and the nvcc test (which compiles them).
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pagedDecodeKernel } from '../kernels/paged-decode.kernel.js';
import type { ScalarName } from '../ir/types.js';
import type { SpecObject } from '../translate/context.js';

export const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'translate', '__golden__');

export interface GoldenCase {
  /** Expected output: __golden__/<name>.cuh. */
  readonly name: string;
  readonly file: string;
  readonly fn: string;
  readonly spec: SpecObject;
  readonly typeArgs: Readonly<Record<string, ScalarName>>;
  readonly blockThreads: number;
}

export const GOLDEN_CASES: readonly GoldenCase[] = [
  {
    name: 'scalars_fast_f16',
    file: 'scalars.kernel.ts',
    fn: 'scalars',
    spec: { mode: 'fast', width: 128, tile: { rows: 4 } },
    typeArgs: { T: 'f16' },
    blockThreads: 128,
  },
  {
    name: 'scalars_exact_bf16',
    file: 'scalars.kernel.ts',
    fn: 'scalars',
    spec: { mode: 'exact', width: 64, tile: { rows: 2 } },
    typeArgs: { T: 'bf16' },
    blockThreads: 64,
  },
  { name: 'memory_t16_v4', file: 'memory.kernel.ts', fn: 'memory', spec: { tokens: 16, vec: 4 }, typeArgs: {}, blockThreads: 64 },
  { name: 'warp_f16_w8', file: 'warp.kernel.ts', fn: 'warp', spec: { groupWidth: 8 }, typeArgs: { T: 'f16' }, blockThreads: 64 },
  { name: 'tile_f16', file: 'tensor-core.kernel.ts', fn: 'tile', spec: {}, typeArgs: { T: 'f16' }, blockThreads: 32 },
];

/** A library kernel end to end (definition -> specialised header), for readability reviews. */
export const GOLDEN_LIBRARY = { def: pagedDecodeKernel, spec: { dtype: 'f16', headDim: 128, pageSize: 32, group: 4 } as const };
