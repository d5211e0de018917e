/** Calls in kernel code: DSL intrinsics, Math functions and helper functions. */
import { Node, type CallExpression } from 'ts-morph';
import type { Expr, IntrinsicName } from '../ir/nodes.js';
import type { ScalarName } from '../ir/types.js';
import { isConst, lit } from './build.js';
import { coerce, convert, scalarOf, unify } from './coerce.js';
import type { FnContext } from './context.js';
import { dslError, locOf } from './errors.js';
import { translateExpr } from './expressions.js';
import { callHelper } from './helpers.js';
import { translateIntrinsic } from './intrinsics.js';
import { resolveScalar } from './type-annotations.js';

const CONVERSIONS = new Set<string>(['f32', 'f16', 'bf16', 'i32', 'u32', 'i64', 'u8']);

export function translateCall(ctx: FnContext, node: CallExpression): Expr {
  if (node.hasQuestionDotToken()) throw dslError(node, 'optional calls (?.) are not allowed in kernels');
  const callee = node.getExpression();
  if (
    Node.isPropertyAccessExpression(callee) &&
    Node.isIdentifier(callee.getExpression()) &&
    callee.getExpression().getText() === 'Math' &&
    !ctx.scope.lookup('Math')
  ) {
    return mathCall(ctx, callee.getName(), node);
  }
  if (!Node.isIdentifier(callee)) throw dslError(callee, 'only DSL intrinsics, Math functions and helper functions can be called');
  const name = callee.getText();
  if (ctx.scope.lookup(name)) throw dslError(callee, `\`${name}\` is a variable, not a function`);
  const dsl = ctx.env.dsl.get(name);
  if (dsl) {
    if (CONVERSIONS.has(dsl)) return conversion(ctx, dsl as ScalarName, node);
    if (dsl === 'convert') {
      const targs = node.getTypeArguments();
      if (targs.length !== 1) throw dslError(node, 'convert<T>(x) needs its target type argument');
      return conversion(ctx, resolveScalar(targs[0], ctx.env, ctx.typeArgs), node);
    }
    if (dsl === 'shared' || dsl === 'local') {
      throw dslError(node, `${dsl}<T>(n) declares storage: use it only as \`const name = ${dsl}<T>(n);\``);
    }
    return translateIntrinsic(ctx, dsl, node);
  }
  const helper = ctx.env.functionNamed(name);
  if (helper) return callHelper(ctx, helper.fn, helper.env, node);
  throw dslError(callee, `unknown function \`${name}\`: kernels call DSL intrinsics, Math functions and helper functions declared in kernel modules`);
}

function conversion(ctx: FnContext, to: ScalarName, node: CallExpression): Expr {
  const args = node.getArguments();
  if (args.length !== 1) throw dslError(node, `${to}(x) takes one argument`);
  const e = translateExpr(ctx, args[0]);
  const from = scalarOf(e);
  if (!from) throw dslError(args[0], `${to}(x) converts scalars only`);
  if (to === 'bool') throw dslError(node, 'write a comparison such as `x !== 0` to get a bool');
  // 16-bit floats convert through f32, the only path CUDA offers for every pair.
  if ((from === 'f16' || from === 'bf16') && to !== 'f32' && from !== to) return convert(convert(e, 'f32'), to);
  if ((to === 'f16' || to === 'bf16') && from !== 'f32' && from !== to) return convert(convert(e, 'f32'), to);
  // Bytes: u8(x) keeps the low 8 bits of an integer; floats go through i32 (explicitly, since that truncates).
  if (to === 'u8' && from !== 'i32' && from !== 'u32' && from !== 'u8')
    throw dslError(node, `u8(x) converts i32 or u32 values (keeping their low 8 bits), not ${from}`);
  return convert(e, to);
}

const UNARY_F32: Record<string, IntrinsicName> = {
  exp: 'exp',
  log: 'log',
  sqrt: 'sqrt',
  floor: 'floor',
  ceil: 'ceil',
  tanh: 'tanh',
  sin: 'sin',
  cos: 'cos',
  log2: 'log2',
};
const FOLD: Partial<Record<IntrinsicName, (...x: number[]) => number>> = {
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  floor: Math.floor,
  ceil: Math.ceil,
  tanh: Math.tanh,
  sin: Math.sin,
  cos: Math.cos,
  log2: Math.log2,
  pow: Math.pow,
  abs: Math.abs,
  max: Math.max,
  min: Math.min,
};

function mathCall(ctx: FnContext, name: string, node: CallExpression): Expr {
  const args = node.getArguments().map((a) => translateExpr(ctx, a));
  const loc = locOf(node);
  const arity = (n: number) => {
    if (args.length !== n) throw dslError(node, `Math.${name} takes ${n} argument(s) in kernels`);
  };
  const f32Arg = (i: number) => coerce(args[i], { kind: 'scalar', name: 'f32' }, node.getArguments()[i], `Math.${name}`);
  const fold = (fn: IntrinsicName, xs: Expr[], t: ScalarName): Expr => {
    const f = FOLD[fn];
    if (f && xs.every(isConst)) {
      const v = f(...xs.map((x) => (x as { v: number }).v));
      return lit(t, t === 'f32' ? Math.fround(v) : v);
    }
    return { k: 'call', fn, args: xs, t: { kind: 'scalar', name: t }, loc };
  };
  if (name in UNARY_F32) {
    arity(1);
    return fold(UNARY_F32[name], [f32Arg(0)], 'f32');
  }
  if (name === 'pow') {
    arity(2);
    return fold('pow', [f32Arg(0), f32Arg(1)], 'f32');
  }
  if (name === 'abs') {
    arity(1);
    const t = scalarOf(args[0]);
    if (t === 'i32' || t === 'i64') return fold('abs', args, t);
    return fold('abs', [f32Arg(0)], 'f32');
  }
  if (name === 'max' || name === 'min') {
    if (args.length < 2) throw dslError(node, `Math.${name} takes at least two arguments`);
    // Nest: max(a, b, c) = max(max(a, b), c), in source order.
    let acc = args[0];
    for (let i = 1; i < args.length; i++) {
      const [a, b, t] = unify(acc, args[i], node, `Math.${name}`);
      acc = fold(name, [a, b], t);
    }
    return acc;
  }
  if (name === 'round') throw dslError(node, 'Math.round rounds halves differently from CUDA; write Math.floor(x + 0.5)');
  throw dslError(
    node,
    `Math.${name} is not available in kernels; available: ${[...Object.keys(UNARY_F32), 'pow', 'abs', 'max', 'min'].map((f) => `Math.${f}`).join(', ')}`,
  );
}
