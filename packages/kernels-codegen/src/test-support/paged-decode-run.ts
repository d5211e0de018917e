import { expect } from 'vitest';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import { EmuBuffer } from '../emulator/memory.js';
import type { EmuArg } from '../emulator/emulate.js';
import { pagedDecodeMergeKernel, type PagedDecodeSpec } from '../kernels/paged-decode.kernel.js';
import type { KernelDefinition } from '../spec/define-kernel.js';

/**
 * Runs paged_decode (or paged_decode_fp8) with fresh partials, outputs and split
 * counters, and checks what its last splits did against an independent run of
 * paged_decode_merge over the same partials: the same bits, and every count back to 0
 * for the next launch. Returns the merged output and lse.
 */
export function runPagedDecode(
  kernel: KernelDefinition<PagedDecodeSpec>,
  spec: PagedDecodeSpec,
  args: Readonly<Record<string, EmuArg>> & { readonly batch: number; readonly numHeads: number; readonly numSplits: number },
): { out: EmuBuffer; lse: EmuBuffer } {
  const rows = args.batch * args.numHeads;
  const D = spec.headDim;
  const partialOut = new EmuBuffer('f32', rows * args.numSplits * D).fill(Number.NaN);
  const partialLse = new EmuBuffer('f32', rows * args.numSplits).fill(Number.NaN);
  const out = new EmuBuffer(spec.dtype, rows * D).fill(Number.NaN);
  const lse = new EmuBuffer('f32', rows).fill(Number.NaN);
  const counters = new EmuBuffer('i32', Math.ceil(rows / spec.group));
  emulateKernel(kernel, spec).run({ ...args, partialOut, partialLse, out, lse, counters });
  const mergedOut = new EmuBuffer(spec.dtype, rows * D);
  const mergedLse = new EmuBuffer('f32', rows);
  emulateKernel(pagedDecodeMergeKernel, { dtype: spec.dtype, headDim: D }).run({
    partialOut,
    partialLse,
    out: mergedOut,
    lse: mergedLse,
    rows,
    numSplits: args.numSplits,
  });
  expect(Array.from(out.toFloat32()), "paged_decode's merge against paged_decode_merge").toEqual(Array.from(mergedOut.toFloat32()));
  expect(Array.from(lse.toFloat32()), "paged_decode's lse against paged_decode_merge's").toEqual(Array.from(mergedLse.toFloat32()));
  expect(Array.from(counters.toInt32()), 'split counters after the launch').toEqual(Array(counters.length).fill(0));
  return { out, lse };
}
