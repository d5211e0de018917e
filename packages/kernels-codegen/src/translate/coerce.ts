/**
 * Implicit conversions. The DSL allows only the ones that cannot lose meaning
 * silently: integer -> f32 and i32/u32 -> i64; compile-time integer constants adapt to
 * whatever integer or float type they meet (like Go's untyped constants). Everything
 * else (narrowing, signedness changes, leaving f16/bf16) needs an explicit conversion.
 */
import type { Node } from 'ts-morph';
import type { Expr } from '../ir/nodes.js';
import { convertValue } from '../ir/scalar-semantics.js';
import { describeType, isArithmetic, isFloat16, isInteger, type DslType, type ScalarName } from '../ir/types.js';
import { dslError } from './errors.js';

export function scalarOf(e: Expr): ScalarName | undefined {
  const t = typeOf(e);
  return t.kind === 'scalar' ? t.name : undefined;
}

export function typeOf(e: Expr): DslType {
  switch (e.k) {
    case 'lit':
    case 'builtin':
    case 'unary':
    case 'binary':
    case 'cond':
    case 'index':
      return { kind: 'scalar', name: e.t };
    case 'convert':
      return { kind: 'scalar', name: e.to };
    case 'var':
    case 'offset':
    case 'call':
    case 'helper':
      return e.t;
  }
}

const RANGE: Partial<Record<ScalarName, [number, number]>> = {
  i32: [-(2 ** 31), 2 ** 31 - 1],
  u32: [0, 2 ** 32 - 1],
  i64: [-(2 ** 53), 2 ** 53],
  u8: [0, 255],
};

/** Whether a constant of type `from` can become a constant of type `to` unchanged. */
function constantFits(e: Expr, to: ScalarName): boolean {
  if (e.k !== 'lit' || typeof e.v !== 'number') return false;
  if (!isInteger(e.t)) return false;
  if (to === 'f32') return Math.fround(e.v) === e.v;
  const r = RANGE[to];
  return r !== undefined && e.v >= r[0] && e.v <= r[1];
}

/** A conversion node, folded when its operand is constant. */
export function convert(e: Expr, to: ScalarName): Expr {
  const from = scalarOf(e);
  if (from === to) return e;
  if (e.k === 'lit' && from) return { k: 'lit', t: to, v: convertValue(from, to, e.v) };
  return { k: 'convert', to, e };
}

function implicitOk(from: ScalarName, to: ScalarName): boolean {
  if (from === to) return true;
  if (to === 'f32') return isInteger(from);
  if (to === 'i64') return from === 'i32' || from === 'u32';
  return false;
}

/** `e` as a value of type `to` (an assignment, argument or return), or a located error. */
export function coerce(e: Expr, to: DslType, node: Node, what: string): Expr {
  const from = typeOf(e);
  if (to.kind === 'scalar' && from.kind === 'scalar') {
    if (constantFits(e, to.name)) return convert(e, to.name);
    if (implicitOk(from.name, to.name)) return convert(e, to.name);
    throw dslError(node, `${what}: cannot convert ${from.name} to ${to.name} implicitly; ${conversionHint(from.name, to.name)}`);
  }
  if (to.kind === 'pointer' && (from.kind === 'pointer' || from.kind === 'array')) {
    const sameSpace = from.space === to.space;
    const writableOk = to.readonly || from.kind === 'array' || !from.readonly;
    if (from.elem === to.elem && sameSpace && writableOk) return e;
  }
  throw dslError(node, `${what}: expected ${describeType(to)}, got ${describeType(from)}`);
}

export function conversionHint(from: ScalarName, to: ScalarName): string {
  if (isFloat16(from)) return `16-bit floats are storage types: convert with ${to}(x)`;
  if (from === 'u8') return `u8 is a storage type: convert with ${to}(x)`;
  if (from === 'bool' || to === 'bool') return to === 'bool' ? 'write a comparison such as `x !== 0`' : 'write `b ? 1 : 0`';
  return `write ${to}(x) to convert explicitly`;
}

/**
 * The common type of two arithmetic operands (C's usual conversions restricted to the
 * implicit conversions above), with both operands converted to it.
 */
export function unify(a: Expr, b: Expr, node: Node, op: string): [Expr, Expr, ScalarName] {
  const ta = scalarOf(a);
  const tb = scalarOf(b);
  if (!ta || !tb) throw dslError(node, `operator ${op} needs scalar operands`);
  for (const t of [ta, tb]) {
    if (!isArithmetic(t)) {
      const hint =
        t === 'u8'
          ? 'u8 is a storage type: convert with u32(x) or i32(x) first'
          : isFloat16(t)
            ? `${t} is a storage type: convert with f32(x) first`
            : 'bool is not a number: write `b ? 1 : 0`';
      throw dslError(node, `operator ${op} does not apply to ${t}; ${hint}`);
    }
  }
  if (ta === tb) return [a, b, ta];
  if (constantFits(a, tb)) return [convert(a, tb), b, tb];
  if (constantFits(b, ta)) return [a, convert(b, ta), ta];
  if (ta === 'f32' || tb === 'f32') return [convert(a, 'f32'), convert(b, 'f32'), 'f32'];
  if (ta === 'i64' || tb === 'i64') return [convert(a, 'i64'), convert(b, 'i64'), 'i64'];
  throw dslError(node, `operator ${op} mixes ${ta} and ${tb}; convert one side with i32(x) or u32(x)`);
}
