/** IR node constructors that type-check operands and fold constants. */
import type { Node } from 'ts-morph';
import type { ArithOp, BinaryOp, CompareOp, Expr } from '../ir/nodes.js';
import { evalArith, evalCompare, evalUnary } from '../ir/scalar-semantics.js';
import { isInteger, type ScalarName } from '../ir/types.js';
import { scalarOf, unify } from './coerce.js';
import { dslError } from './errors.js';

export const lit = (t: ScalarName, v: number | boolean): Expr => ({ k: 'lit', t, v });
export const isConst = (e: Expr): e is Extract<Expr, { k: 'lit' }> => e.k === 'lit';

const COMPARE = new Set<BinaryOp>(['<', '<=', '>', '>=', '===', '!==']);
const SHIFT = new Set<BinaryOp>(['<<', '>>', '>>>']);
const BITWISE = new Set<BinaryOp>(['&', '|', '^']);

export function requireBool(e: Expr, node: Node, what: string): Expr {
  const t = scalarOf(e);
  if (t !== 'bool') {
    throw dslError(node, `${what} must be bool, got ${t ?? 'a pointer'}; write a comparison such as \`x !== 0\``);
  }
  return e;
}

export function binary(op: BinaryOp, a: Expr, b: Expr, node: Node): Expr {
  if (op === '&&' || op === '||') {
    requireBool(a, node, `the left operand of ${op}`);
    requireBool(b, node, `the right operand of ${op}`);
    if (isConst(a)) return (op === '&&') === a.v ? b : a;
    if (isConst(b) && (op === '&&') === b.v) return a;
    return { k: 'binary', op, a, b, t: 'bool', ot: 'bool' };
  }
  if (COMPARE.has(op)) {
    if ((op === '===' || op === '!==') && scalarOf(a) === 'bool' && scalarOf(b) === 'bool') {
      if (isConst(a) && isConst(b)) return lit('bool', evalCompare(op as CompareOp, a.v, b.v));
      return { k: 'binary', op, a, b, t: 'bool', ot: 'bool' };
    }
    const [x, y, t] = unify(a, b, node, op);
    if (isConst(x) && isConst(y)) return lit('bool', evalCompare(op as CompareOp, x.v, y.v));
    return { k: 'binary', op, a: x, b: y, t: 'bool', ot: t };
  }
  if (SHIFT.has(op)) {
    const ta = scalarOf(a);
    const tb = scalarOf(b);
    if (!ta || !tb || !isInteger(ta) || !isInteger(tb)) throw dslError(node, `operator ${op} needs integer operands`);
    const width = ta === 'i64' ? 64 : 32;
    if (isConst(b) && ((b.v as number) < 0 || (b.v as number) >= width)) throw dslError(node, `shift by ${String(b.v)} is outside 0..${width - 1}`);
    if (isConst(a) && isConst(b)) return lit(ta, evalArith(op as ArithOp, ta, a.v as number, b.v as number));
    return { k: 'binary', op, a, b, t: ta, ot: ta };
  }
  const [x, y, t] = unify(a, b, node, op);
  if ((op === '/' || op === '%') && isInteger(t) && isConst(y) && y.v === 0) throw dslError(node, 'integer division by zero');
  if ((op === '%' || BITWISE.has(op)) && !isInteger(t)) {
    throw dslError(node, `operator ${op} needs integer operands, got ${t}${op === '%' ? '' : '; use floatBits(x) for the bits of a float'}`);
  }
  if (isConst(x) && isConst(y)) {
    return lit(t, evalArith(op as ArithOp, t, x.v as number, y.v as number));
  }
  return { k: 'binary', op, a: x, b: y, t, ot: t };
}

export function unary(op: '-' | '!' | '~', e: Expr, node: Node): Expr {
  const t = scalarOf(e);
  if (!t) throw dslError(node, `operator ${op} needs a scalar operand`);
  if (op === '!') requireBool(e, node, 'the operand of !');
  else if (op === '~' && !isInteger(t)) throw dslError(node, `operator ~ needs an integer operand, got ${t}`);
  else if (op === '-' && (t === 'bool' || t === 'f16' || t === 'bf16' || t === 'u32' || t === 'u8')) {
    throw dslError(node, t === 'u32' ? 'negating a u32 wraps around; convert to i32 first' : `operator - does not apply to ${t}; convert with f32(x) first`);
  }
  if (isConst(e)) return lit(t, evalUnary(op, t, e.v));
  return { k: 'unary', op, e, t };
}
