/**
 * The `$R` object emulated kernels call: loads and stores with bounds, alignment and
 * race checks, C integer arithmetic, conversions, atomics, and the requests a thread
 * yields at barriers and warp collectives (resolved by the scheduler).
 */
import type { SourceLoc } from '../ir/nodes.js';
import { roundBf16, roundHalf } from '../ir/half.js';
import { e4m3ToFloat, floatToE4m3Bits } from '@arkvale/core';
import { sizeOf, type ScalarName } from '../ir/types.js';
import { EmuMemory, type ElemType, type EmuPtr } from './memory.js';

export interface BlockCtx {
  /** Barriers passed so far (shared-memory race checks compare epochs). */
  epoch: number;
  readonly label: string;
}

/** What kernel code sees as threadIdx & co, plus the emulator's own bookkeeping. */
export interface ThreadCtx {
  readonly threadIdx_x: number;
  readonly threadIdx_y: number;
  readonly threadIdx_z: number;
  readonly blockIdx_x: number;
  readonly blockIdx_y: number;
  readonly blockIdx_z: number;
  readonly blockDim_x: number;
  readonly blockDim_y: number;
  readonly blockDim_z: number;
  readonly gridDim_x: number;
  readonly gridDim_y: number;
  readonly gridDim_z: number;
  /** Linear thread index in the block (x fastest). */
  readonly tid: number;
  readonly lane: number;
  readonly warp: number;
  readonly block: BlockCtx;
}

export type Request =
  | { readonly kind: 'barrier'; readonly loc: number }
  | { readonly kind: 'syncwarp'; readonly loc: number }
  | { readonly kind: 'shuffle'; readonly fn: string; readonly v: number; readonly lane: number; readonly width: number; readonly loc: number }
  | { readonly kind: 'vote'; readonly fn: string; readonly p: boolean; readonly loc: number }
  | { readonly kind: 'ldmatrix'; readonly trans: boolean; readonly dst: EmuPtr; readonly src: EmuPtr; readonly loc: number }
  | { readonly kind: 'mma'; readonly d: EmuPtr; readonly a: EmuPtr; readonly b: EmuPtr; readonly c: EmuPtr; readonly loc: number };

/** A kernel bug found by the emulator, located in the DSL source. */
export class EmuFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmuFault';
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function createRuntime(kernelName: string, locs: readonly SourceLoc[]) {
  const where = (loc: number) => {
    const l = locs[loc];
    return l ? `${l.file}:${l.line}:${l.column}` : '?';
  };
  const fault = (T: ThreadCtx | undefined, loc: number | undefined, msg: string): never => {
    const who = T ? ` (block ${T.block.label}, thread ${T.tid})` : '';
    throw new EmuFault(`${kernelName}: ${msg}${who}${loc !== undefined ? ` at ${where(loc)}` : ''}`);
  };
  const check = (p: EmuPtr, i: number, T: ThreadCtx, loc: number): number => {
    if (p === undefined || p === null || !(p.mem instanceof EmuMemory)) fault(T, loc, 'access through an unset pointer');
    const idx = p.o + i;
    if (!(idx >= 0 && idx < p.mem.length)) fault(T, loc, `${p.mem.space} ${p.mem.name}[${idx}] is out of bounds (length ${p.mem.length})`);
    return idx;
  };
  const onRead = (m: EmuMemory, idx: number, T: ThreadCtx, loc: number) => {
    if (m.writer) {
      const w = m.writer[idx];
      if (w >= 0 && w !== T.tid && m.writeEpoch![idx] === T.block.epoch) {
        fault(T, loc, `race: reads shared ${m.name}[${idx}] written by thread ${w} with no syncthreads() in between`);
      }
    }
  };
  const onWrite = (m: EmuMemory, idx: number, T: ThreadCtx, loc: number, atomic = false) => {
    if (m.writer) {
      const w = m.writer[idx];
      if (!atomic && w >= 0 && w !== T.tid && m.writeEpoch![idx] === T.block.epoch) {
        fault(T, loc, `race: writes shared ${m.name}[${idx}] also written by thread ${w} with no syncthreads() in between`);
      }
      m.writer[idx] = atomic ? -2 : T.tid;
      m.writeEpoch![idx] = T.block.epoch;
    }
  };
  const ld = (p: EmuPtr, i: number, T: ThreadCtx, loc: number): number => {
    const idx = check(p, i, T, loc);
    onRead(p.mem, idx, T, loc);
    return p.mem.get(idx);
  };
  const st = (p: EmuPtr, i: number, v: number, T: ThreadCtx, loc: number): void => {
    const idx = check(p, i, T, loc);
    onWrite(p.mem, idx, T, loc);
    p.mem.set(idx, v);
  };
  const intOp = (T: ThreadCtx, b: number) => {
    if (b === 0) fault(T, undefined, 'integer division by zero');
  };
  const vectorCheck = (p: EmuPtr, i: number, n: number, T: ThreadCtx, loc: number, what: string) => {
    const bytes = n * sizeOf(p.mem.t);
    if (((p.o + i) * sizeOf(p.mem.t)) % bytes !== 0) fault(T, loc, `${what} of ${bytes} bytes at ${p.mem.name}[${p.o + i}] is misaligned`);
    check(p, i, T, loc);
    check(p, i + n - 1, T, loc);
  };
  const copy = (dst: EmuPtr, di: number, src: EmuPtr, si: number, n: number, T: ThreadCtx, loc: number) => {
    for (let k = 0; k < n; k++) st(dst, di + k, ld(src, si + k, T, loc), T, loc);
  };
  const cpAsync = (bytes: number, dst: EmuPtr, di: number, src: EmuPtr, si: number, T: ThreadCtx, loc: number) => {
    const n = bytes / sizeOf(dst.mem.t);
    vectorCheck(dst, di, n, T, loc, 'cp.async destination');
    vectorCheck(src, si, n, T, loc, 'cp.async source');
    copy(dst, di, src, si, n, T, loc);
  };
  const atomic = (p: EmuPtr, i: number, T: ThreadCtx, loc: number, f: (old: number) => number): number => {
    const idx = check(p, i, T, loc);
    const old = p.mem.get(idx);
    onWrite(p.mem, idx, T, loc, true);
    p.mem.set(idx, f(old));
    return old;
  };
  const wrap = (t: ElemType, v: number) => (t === 'i32' ? v | 0 : t === 'u32' ? v >>> 0 : Math.fround(v));

  return {
    where,
    fault,
    ld_f32: ld,
    ld_i32: ld,
    ld_u32: ld,
    ld_i64: ld,
    ld_f16: ld,
    ld_bf16: ld,
    ld_u8: ld,
    st_f32: st,
    st_i32: st,
    st_u32: st,
    st_i64: st,
    st_f16: st,
    st_bf16: st,
    st_u8: st,
    off: (p: EmuPtr, n: number): EmuPtr => ({ mem: p.mem, o: p.o + n }),
    idiv: (a: number, b: number, T: ThreadCtx) => (intOp(T, b), (a / b) | 0),
    imod: (a: number, b: number, T: ThreadCtx) => (intOp(T, b), (a % b) | 0),
    udiv: (a: number, b: number, T: ThreadCtx) => (intOp(T, b), Math.trunc(a / b) >>> 0),
    umod: (a: number, b: number, T: ThreadCtx) => (intOp(T, b), (a % b) >>> 0),
    ldiv: (a: number, b: number, T: ThreadCtx) => (intOp(T, b), Math.trunc(a / b)),
    lmod: (a: number, b: number, T: ThreadCtx) => (intOp(T, b), a % b),
    op64: (op: string, a: number, b: number): number => {
      const x = BigInt(a);
      const y = BigInt(b);
      const r = op === '&' ? x & y : op === '|' ? x | y : op === '^' ? x ^ y : op === '<<' ? x << y : op === '>>' ? x >> y : BigInt.asUintN(64, x) >> y;
      return Number(BigInt.asIntN(64, r));
    },
    not64: (a: number) => Number(~BigInt(a)),
    roundHalf,
    roundBf16,
    f2i: (v: number) => (Number.isNaN(v) ? 0 : Math.trunc(v) | 0),
    f2u: (v: number) => (Number.isNaN(v) ? 0 : Math.trunc(v) >>> 0),
    f2l: (v: number) => (Number.isNaN(v) ? 0 : Math.trunc(v)),
    // CUDA's fmaxf/fminf: a NaN operand yields the other operand.
    fmax: (a: number, b: number) => (Number.isNaN(a) ? b : Number.isNaN(b) ? a : Math.max(a, b)),
    fmin: (a: number, b: number) => (Number.isNaN(a) ? b : Number.isNaN(b) ? a : Math.min(a, b)),
    floatBits: (v: number) => {
      f32buf[0] = v;
      return u32buf[0];
    },
    bitsToFloat: (u: number) => {
      u32buf[0] = u;
      return f32buf[0];
    },
    // fp8 codes, with core's codec (bit-exact with cuda_fp8.h's conversions)
    encodeE4m3: (v: number) => floatToE4m3Bits(v),
    decodeE4m3: (c: number) => e4m3ToFloat(c),
    popc: (u: number) => {
      let n = 0;
      for (let x = u >>> 0; x; x &= x - 1) n++;
      return n;
    },
    garbage: (t: ScalarName) => (t === 'bool' ? false : t === 'f32' || t === 'f16' || t === 'bf16' ? NaN : t === 'u8' ? 0xad : 0xdead),
    local: (t: ElemType, n: number, name: string): EmuPtr => {
      const m = new EmuMemory(t, n, name, 'local');
      m.fillGarbage();
      return { mem: m, o: 0 };
    },
    shared: (t: ElemType, n: number, name: string): EmuPtr => {
      const m = new EmuMemory(t, n, name, 'shared');
      m.fillGarbage();
      m.writer = new Int32Array(n).fill(-1);
      m.writeEpoch = new Int32Array(n);
      return { mem: m, o: 0 };
    },
    barrier: (loc: number): Request => ({ kind: 'barrier', loc }),
    syncwarp: (loc: number): Request => ({ kind: 'syncwarp', loc }),
    shuffle: (fn: string, v: number, lane: number, width: number, loc: number): Request => ({ kind: 'shuffle', fn, v, lane, width, loc }),
    vote: (fn: string, p: boolean, loc: number): Request => ({ kind: 'vote', fn, p, loc }),
    ldmatrixX4: (dst: EmuPtr, src: EmuPtr, i: number, loc: number): Request => ({
      kind: 'ldmatrix',
      trans: false,
      dst,
      src: { mem: src.mem, o: src.o + i },
      loc,
    }),
    ldmatrixX4Trans: (dst: EmuPtr, src: EmuPtr, i: number, loc: number): Request => ({
      kind: 'ldmatrix',
      trans: true,
      dst,
      src: { mem: src.mem, o: src.o + i },
      loc,
    }),
    mmaM16N8K16: (d: EmuPtr, a: EmuPtr, b: EmuPtr, c: EmuPtr, loc: number): Request => ({ kind: 'mma', d, a, b, c, loc }),
    atomicAdd: (p: EmuPtr, i: number, v: number, T: ThreadCtx, loc: number) => atomic(p, i, T, loc, (o) => wrap(p.mem.t, o + v)),
    atomicMax: (p: EmuPtr, i: number, v: number, T: ThreadCtx, loc: number) => atomic(p, i, T, loc, (o) => Math.max(o, v)),
    atomicMin: (p: EmuPtr, i: number, v: number, T: ThreadCtx, loc: number) => atomic(p, i, T, loc, (o) => Math.min(o, v)),
    atomicExch: (p: EmuPtr, i: number, v: number, T: ThreadCtx, loc: number) => atomic(p, i, T, loc, () => v),
    atomicCAS: (p: EmuPtr, i: number, cmp: number, v: number, T: ThreadCtx, loc: number) => atomic(p, i, T, loc, (o) => (o === cmp ? v : o)),
    vload: (dst: EmuPtr, src: EmuPtr, i: number, T: ThreadCtx, loc: number) => {
      vectorCheck(src, i, dst.mem.length, T, loc, 'vector load');
      copy(dst, 0, src, i, dst.mem.length, T, loc);
    },
    vstore: (dst: EmuPtr, i: number, src: EmuPtr, T: ThreadCtx, loc: number) => {
      vectorCheck(dst, i, src.mem.length, T, loc, 'vector store');
      copy(dst, i, src, 0, src.mem.length, T, loc);
    },
    cpAsync16: (dst: EmuPtr, di: number, src: EmuPtr, si: number, T: ThreadCtx, loc: number) => cpAsync(16, dst, di, src, si, T, loc),
    cpAsync8: (dst: EmuPtr, di: number, src: EmuPtr, si: number, T: ThreadCtx, loc: number) => cpAsync(8, dst, di, src, si, T, loc),
    cpAsync4: (dst: EmuPtr, di: number, src: EmuPtr, si: number, T: ThreadCtx, loc: number) => cpAsync(4, dst, di, src, si, T, loc),
  };
}

export type Runtime = ReturnType<typeof createRuntime>;
