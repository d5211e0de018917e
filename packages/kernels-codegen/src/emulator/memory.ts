/**
 * Emulated memory: typed buffers (16-bit floats kept as their bit patterns, as on a
 * GPU) and pointers into them. Shared arrays track their last writer per element so
 * that a read of another thread's write without a barrier in between is reported.
 */
import { floatToBf16Bits, floatToHalfBits, halfBitsToFloat, bf16BitsToFloat } from '../ir/half.js';
import type { MemorySpace, ScalarName } from '../ir/types.js';

export type ElemType = Exclude<ScalarName, 'bool'>;
type Store = Float32Array | Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array;

function storeFor(t: ElemType, n: number): Store {
  switch (t) {
    case 'f32':
      return new Float32Array(n);
    case 'i32':
      return new Int32Array(n);
    case 'u32':
      return new Uint32Array(n);
    case 'i64':
      return new Float64Array(n);
    case 'u8':
      return new Uint8Array(n);
    default:
      return new Uint16Array(n);
  }
}

export class EmuMemory {
  readonly a: Store;
  /** Shared arrays: thread id of the last plain write per element (-1 none), and its barrier epoch. */
  writer?: Int32Array;
  writeEpoch?: Int32Array;
  constructor(
    readonly t: ElemType,
    readonly length: number,
    readonly name: string,
    readonly space: MemorySpace,
  ) {
    this.a = storeFor(t, length);
  }

  get(i: number): number {
    const v = this.a[i];
    if (this.t === 'f16') return HALF_TABLE()[v];
    if (this.t === 'bf16') return bf16BitsToFloat(v);
    return v;
  }

  set(i: number, v: number): void {
    if (this.t === 'f16') this.a[i] = floatToHalfBits(v);
    else if (this.t === 'bf16') this.a[i] = floatToBf16Bits(v);
    else this.a[i] = v;
  }

  /** Fills with values a kernel must not rely on (NaN for floats). */
  fillGarbage(): void {
    if (this.t === 'f16' || this.t === 'bf16') this.a.fill(0x7fff);
    else if (this.t === 'f32' || this.t === 'i64') this.a.fill(this.t === 'f32' ? NaN : -0xdeadbeef);
    else this.a.fill(0xdeadbeef);
  }
}

let halfTable: Float32Array | undefined;
export function HALF_TABLE(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfBitsToFloat(i);
  }
  return halfTable;
}

/** A pointer: a memory and an element offset. */
export interface EmuPtr {
  readonly mem: EmuMemory;
  readonly o: number;
}

/**
 * A device buffer for emulated launches. Values written from JS are rounded to the
 * element type, exactly as a host-to-device copy of converted data would be.
 */
export class EmuBuffer implements EmuPtr {
  readonly mem: EmuMemory;
  readonly o = 0;
  constructor(t: ElemType, length: number, name = 'buffer') {
    this.mem = new EmuMemory(t, length, name, 'global');
  }

  static from(t: ElemType, values: ArrayLike<number>, name?: string): EmuBuffer {
    const b = new EmuBuffer(t, values.length, name);
    for (let i = 0; i < values.length; i++) b.mem.set(i, values[i]);
    return b;
  }

  get length(): number {
    return this.mem.length;
  }

  toArray(): number[] {
    return Array.from({ length: this.mem.length }, (_, i) => this.mem.get(i));
  }

  toFloat32(): Float32Array {
    return Float32Array.from(this.toArray());
  }

  toInt32(): Int32Array {
    return Int32Array.from(this.toArray());
  }

  fill(v: number): this {
    for (let i = 0; i < this.mem.length; i++) this.mem.set(i, v);
    return this;
  }
}
