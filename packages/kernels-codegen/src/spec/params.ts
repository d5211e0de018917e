/**
 * The byte layout of a kernel's parameter buffer, as CUDA lays out kernel parameters
 * (each at its natural alignment, in order): what the launch surface packs and a
 * binding passes to cuLaunchKernel with CU_LAUNCH_PARAM_BUFFER_POINTER.
 */
import type { Param } from '../ir/nodes.js';
import { describeType } from '../ir/types.js';

export type ParamKind = 'pointer' | 'i32' | 'u32' | 'f32' | 'i64';

export interface ParamSlot {
  readonly name: string;
  /** The DSL type as written (`GlobalIn<f16>`, `i32`). */
  readonly type: string;
  readonly kind: ParamKind;
  readonly offset: number;
  readonly size: number;
}

/** sm_70+ with CUDA 12.1+ accepts 32764 bytes; older drivers 4096. Stay portable. */
export const MAX_PARAM_BYTES = 4096;

export function paramLayout(params: readonly Param[]): { slots: ParamSlot[]; bytes: number } {
  let offset = 0;
  let maxAlign = 1;
  const slots = params.map((p): ParamSlot => {
    let kind: ParamKind;
    if (p.t.kind === 'pointer') kind = 'pointer';
    else if (p.t.kind === 'scalar' && (p.t.name === 'i32' || p.t.name === 'u32' || p.t.name === 'f32' || p.t.name === 'i64')) kind = p.t.name;
    else throw new Error(`parameter ${p.name}: ${describeType(p.t)} cannot be a kernel parameter`);
    const size = kind === 'pointer' || kind === 'i64' ? 8 : 4;
    offset = Math.ceil(offset / size) * size;
    maxAlign = Math.max(maxAlign, size);
    const slot = { name: p.name, type: describeType(p.t), kind, offset, size };
    offset += size;
    return slot;
  });
  return { slots, bytes: Math.ceil(offset / maxAlign) * maxAlign };
}
