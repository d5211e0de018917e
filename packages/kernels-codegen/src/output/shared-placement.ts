/**
 * Where a kernel's shared arrays live. A kernel may declare at most 48 KB of shared
 * memory statically; past that, CUDA wants the memory asked for at launch
 * (`extern __shared__`, the launch's dynamicSmemBytes, and a one-time opt-in per
 * function: the binding's launch does both). The DSL does not change: a kernel still
 * writes `shared<T>(n)` at its top level, and a kernel over 48 KB has every shared
 * array placed in one dynamic buffer at 16-byte aligned offsets, in declaration order.
 */
import type { KernelIR, Stmt } from '../ir/nodes.js';
import { sizeOf } from '../ir/types.js';

/** sm_90 limits: shared memory a kernel may declare statically, and the most a block may have at all (opted in). */
export const SHARED_LIMITS = { staticBytes: 48 * 1024, blockBytes: 227 * 1024 } as const;

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** The IR as launched: static when its shared arrays fit 48 KB, else placed in dynamic shared memory. */
export function placeSharedMemory(ir: KernelIR): KernelIR {
  const total = ir.staticSharedBytes;
  if (total > SHARED_LIMITS.blockBytes) {
    throw new Error(`${ir.name}: ${total} bytes of shared memory exceed sm_90's ${SHARED_LIMITS.blockBytes} a block`);
  }
  if (total <= SHARED_LIMITS.staticBytes) return ir;
  let offset = 0;
  const body = ir.body.map((s): Stmt => {
    if (s.k !== 'array' || s.t.space !== 'shared') return s;
    offset = alignUp(offset, 16);
    const placed = { ...s, dynamicOffset: offset };
    offset += s.t.length * sizeOf(s.t.elem);
    return placed;
  });
  return { ...ir, body, staticSharedBytes: 0, dynamicSharedBytes: offset };
}
