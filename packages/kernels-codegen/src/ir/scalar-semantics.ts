/**
 * The DSL's scalar semantics (C's, on the DSL's types) on JS numbers: used to fold
 * constants in the translator and by the emulator, so a folded expression and an
 * emulated one agree.
 */
import { roundBf16, roundHalf } from './half.js';
import type { ArithOp, CompareOp } from './nodes.js';
import type { ScalarName } from './types.js';

/** Rounds or wraps a JS number into the value set of `t`. */
export function represent(t: ScalarName, v: number): number {
  switch (t) {
    case 'f32':
      return Math.fround(v);
    case 'f16':
      return roundHalf(v);
    case 'bf16':
      return roundBf16(v);
    case 'i32':
      return v | 0;
    case 'u32':
      return v >>> 0;
    case 'i64':
      // JS numbers hold i64 values exactly up to 2^53, far beyond any buffer size.
      return Math.trunc(v);
    case 'bool':
      return v ? 1 : 0;
    case 'u8':
      return v & 0xff;
  }
}

/** C conversion of a value of type `from` to type `to`. */
export function convertValue(from: ScalarName, to: ScalarName, v: number | boolean): number | boolean {
  if (to === 'bool') return typeof v === 'boolean' ? v : v !== 0;
  const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  if (from === to) return n;
  const isFloatSource = from === 'f32' || from === 'f16' || from === 'bf16';
  if (isFloatSource && (to === 'i32' || to === 'u32' || to === 'i64')) {
    // C truncates toward zero (out-of-range is undefined; we wrap).
    if (Number.isNaN(n)) return 0;
    return represent(to, Math.trunc(n));
  }
  return represent(to, n);
}

export function evalArith(op: ArithOp, t: ScalarName, a: number, b: number): number {
  if (t === 'f32') {
    switch (op) {
      case '+':
        return Math.fround(a + b);
      case '-':
        return Math.fround(a - b);
      case '*':
        return Math.fround(a * b);
      case '/':
        return Math.fround(a / b);
      default:
        throw new Error(`operator ${op} on f32`);
    }
  }
  if ((op === '/' || op === '%') && b === 0) throw new RangeError('integer division by zero');
  switch (op) {
    case '+':
      return represent(t, a + b);
    case '-':
      return represent(t, a - b);
    case '*':
      return t === 'i64' ? Math.trunc(a * b) : represent(t, t === 'i32' ? Math.imul(a, b) : Math.imul(a, b) >>> 0);
    case '/':
      return represent(t, Math.trunc(a / b));
    case '%':
      return represent(t, a % b);
    case '&':
      return t === 'i64' ? Number(BigInt(a) & BigInt(b)) : represent(t, a & b);
    case '|':
      return t === 'i64' ? Number(BigInt(a) | BigInt(b)) : represent(t, a | b);
    case '^':
      return t === 'i64' ? Number(BigInt(a) ^ BigInt(b)) : represent(t, a ^ b);
    case '<<':
      return t === 'i64' ? Number(BigInt.asIntN(64, BigInt(a) << BigInt(b))) : represent(t, a << b);
    case '>>':
      if (t === 'i64') return Number(BigInt(a) >> BigInt(b));
      return t === 'u32' ? a >>> b : a >> b;
    case '>>>':
      if (t === 'i64') return Number(BigInt.asUintN(64, BigInt(a)) >> BigInt(b));
      return represent(t, a >>> b);
  }
}

export function evalCompare(op: CompareOp, a: number | boolean, b: number | boolean): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '===':
      return a === b;
    case '!==':
      return a !== b;
  }
}

export function evalUnary(op: '-' | '!' | '~', t: ScalarName, v: number | boolean): number | boolean {
  if (op === '!') return !v;
  const n = v as number;
  if (op === '-') return represent(t, -n);
  return t === 'i64' ? Number(~BigInt(n)) : represent(t, ~n);
}
