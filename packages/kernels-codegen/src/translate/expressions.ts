/** TypeScript expressions -> typed IR expressions (constants folded). */
import { Node, SyntaxKind } from 'ts-morph';
import type { Expr } from '../ir/nodes.js';
import type { DslType } from '../ir/types.js';
import { binary, isConst, lit, requireBool, unary } from './build.js';
import { translateCall } from './calls.js';
import { scalarOf, typeOf, unify } from './coerce.js';
import { FnContext, type SpecObject, type SpecValue } from './context.js';
import { dslError, locOf } from './errors.js';

/** What an expression may denote before it must become a runtime value. */
export type Value = Expr | { readonly k: 'str'; readonly v: string } | { readonly k: 'spec'; readonly v: SpecObject };

const DIM3 = new Set(['threadIdx', 'blockIdx', 'blockDim', 'gridDim']);
const MATH_CONSTANTS: Record<string, number> = {
  PI: Math.PI,
  E: Math.E,
  LN2: Math.LN2,
  LN10: Math.LN10,
  LOG2E: Math.LOG2E,
  LOG10E: Math.LOG10E,
  SQRT2: Math.SQRT2,
  SQRT1_2: Math.SQRT1_2,
};

export function translateExpr(ctx: FnContext, node: Node): Expr {
  const v = translateValue(ctx, node);
  if (v.k === 'str') throw dslError(node, 'compile-time strings can only be compared with === or !== (e.g. `spec.variant === "sphere"`)');
  if (v.k === 'spec') throw dslError(node, 'a spec object is not a value; read one of its fields');
  return v;
}

export function translateCondition(ctx: FnContext, node: Node, what: string): Expr {
  return requireBool(translateExpr(ctx, node), node, what);
}

export function translateValue(ctx: FnContext, node: Node): Value {
  if (Node.isParenthesizedExpression(node)) return translateValue(ctx, node.getExpression());
  if (Node.isNumericLiteral(node)) return numericLiteral(node.getText(), node.getLiteralValue(), node);
  if (Node.isTrueLiteral(node) || Node.isFalseLiteral(node)) return lit('bool', node.getLiteralValue());
  if (Node.isStringLiteral(node) || Node.isNoSubstitutionTemplateLiteral(node)) return { k: 'str', v: node.getLiteralValue() };
  if (Node.isIdentifier(node)) return identifier(ctx, node.getText(), node);
  if (Node.isPrefixUnaryExpression(node)) return prefixUnary(ctx, node);
  if (Node.isBinaryExpression(node)) return binaryExpression(ctx, node);
  if (Node.isConditionalExpression(node)) return conditional(ctx, node);
  if (Node.isPropertyAccessExpression(node)) return propertyAccess(ctx, node);
  if (Node.isElementAccessExpression(node)) return elementAccess(ctx, node);
  if (Node.isCallExpression(node)) return translateCall(ctx, node);
  throw rejectExpression(node);
}

function numericLiteral(text: string, value: number, node: Node): Expr {
  const isHex = /^0[xXbBoO]/.test(text);
  if (!isHex && /[.eE]/.test(text)) return lit('f32', Math.fround(value));
  if (!Number.isSafeInteger(value)) throw dslError(node, `integer literal ${text} is too large`);
  if (value <= 2 ** 31 - 1) return lit('i32', value);
  if (value <= 2 ** 32 - 1) return lit('u32', value);
  return lit('i64', value);
}

function identifier(ctx: FnContext, name: string, node: Node): Value {
  const b = ctx.scope.lookup(name);
  if (b) {
    if (b.kind === 'string') return { k: 'str', v: b.value };
    if (b.kind === 'spec') return { k: 'spec', v: b.value };
    return b.expr;
  }
  const dsl = ctx.env.dsl.get(name);
  if (dsl === 'WARP_SIZE') return lit('i32', 32);
  if (dsl === 'INF') return lit('f32', Infinity);
  if (dsl && DIM3.has(dsl)) throw dslError(node, `${dsl} is a dim3: read ${dsl}.x, ${dsl}.y or ${dsl}.z`);
  if (dsl) throw dslError(node, `${dsl} is a DSL function: call it`);
  const constant = ctx.env.constantNamed(name);
  if (constant) return moduleConstant(ctx, constant.decl, constant.env);
  if (name === 'Infinity') return lit('f32', Infinity);
  if (name === 'NaN') throw dslError(node, 'NaN literals are not allowed in kernels');
  if (name === 'undefined') throw dslError(node, '`undefined` does not exist in kernels: every variable holds a value of its DSL type');
  if (ctx.env.functionNamed(name)) throw dslError(node, `helper function ${name} can only be called, not used as a value`);
  if (ctx.env.isForeignImport(name)) {
    throw dslError(node, `\`${name}\` is imported from a module that is neither the DSL nor a relative kernel module`);
  }
  throw dslError(node, `unknown name \`${name}\``);
}

function moduleConstant(ctx: FnContext, decl: import('ts-morph').VariableDeclaration, env: FnContext['env']): Value {
  const stmt = decl.getVariableStatement();
  const init = decl.getInitializer();
  if (stmt?.getDeclarationKind() !== 'const' || !init) {
    throw dslError(decl, `module-level \`${decl.getName()}\` used by a kernel must be a const with a compile-time value`);
  }
  const moduleCtx = new FnContext(env, new Map(), ctx.unit, { kind: 'void' }, false, undefined);
  const v = translateValue(moduleCtx, init);
  if (v.k === 'str' || v.k === 'lit') return v;
  throw dslError(init, `module-level constant \`${decl.getName()}\` must fold to a number, boolean or string at compile time`);
}

function prefixUnary(ctx: FnContext, node: import('ts-morph').PrefixUnaryExpression): Expr {
  const op = node.getOperatorToken();
  const operand = node.getOperand();
  switch (op) {
    case SyntaxKind.MinusToken:
      return unary('-', translateExpr(ctx, operand), node);
    case SyntaxKind.PlusToken:
      return translateExpr(ctx, operand);
    case SyntaxKind.ExclamationToken:
      return unary('!', translateExpr(ctx, operand), node);
    case SyntaxKind.TildeToken:
      return unary('~', translateExpr(ctx, operand), node);
    default:
      throw dslError(node, '++ and -- are statements in kernels (`i++;` or a for-loop update), not values');
  }
}

const BINARY_OPS: Partial<Record<SyntaxKind, import('../ir/nodes.js').BinaryOp>> = {
  [SyntaxKind.PlusToken]: '+',
  [SyntaxKind.MinusToken]: '-',
  [SyntaxKind.AsteriskToken]: '*',
  [SyntaxKind.SlashToken]: '/',
  [SyntaxKind.PercentToken]: '%',
  [SyntaxKind.AmpersandToken]: '&',
  [SyntaxKind.BarToken]: '|',
  [SyntaxKind.CaretToken]: '^',
  [SyntaxKind.LessThanLessThanToken]: '<<',
  [SyntaxKind.GreaterThanGreaterThanToken]: '>>',
  [SyntaxKind.GreaterThanGreaterThanGreaterThanToken]: '>>>',
  [SyntaxKind.LessThanToken]: '<',
  [SyntaxKind.LessThanEqualsToken]: '<=',
  [SyntaxKind.GreaterThanToken]: '>',
  [SyntaxKind.GreaterThanEqualsToken]: '>=',
  [SyntaxKind.EqualsEqualsEqualsToken]: '===',
  [SyntaxKind.ExclamationEqualsEqualsToken]: '!==',
  [SyntaxKind.AmpersandAmpersandToken]: '&&',
  [SyntaxKind.BarBarToken]: '||',
};

const REJECTED_BINARY: Partial<Record<SyntaxKind, string>> = {
  [SyntaxKind.EqualsEqualsToken]: 'use === (kernels compare values of one type; no coercion)',
  [SyntaxKind.ExclamationEqualsToken]: 'use !== (kernels compare values of one type; no coercion)',
  [SyntaxKind.AsteriskAsteriskToken]: 'use Math.pow(x, y)',
  [SyntaxKind.QuestionQuestionToken]: 'kernel values are never null or undefined; ?? has nothing to do',
  [SyntaxKind.CommaToken]: 'the comma operator is not allowed; write separate statements',
  [SyntaxKind.InKeyword]: 'kernels have no objects to test with `in`',
  [SyntaxKind.InstanceOfKeyword]: 'kernels have no objects to test with `instanceof`',
};

function binaryExpression(ctx: FnContext, node: import('ts-morph').BinaryExpression): Value {
  const kind = node.getOperatorToken().getKind();
  const op = BINARY_OPS[kind];
  if (!op) {
    const why = REJECTED_BINARY[kind];
    if (why) throw dslError(node.getOperatorToken(), `operator ${node.getOperatorToken().getText()} is not allowed: ${why}`);
    throw dslError(node, 'assignments are statements in kernels, not values');
  }
  const left = translateValue(ctx, node.getLeft());
  // Short-circuit folding: `false && x` never evaluates x, so x may be invalid for this spec.
  if ((op === '&&' || op === '||') && left.k === 'lit' && left.v === (op === '||')) {
    requireBool(left, node.getLeft(), `the left operand of ${op}`);
    return left;
  }
  const right = translateValue(ctx, node.getRight());
  if (left.k === 'str' || right.k === 'str') {
    if ((op === '===' || op === '!==') && left.k === 'str' && right.k === 'str') return lit('bool', (left.v === right.v) === (op === '==='));
    throw dslError(node, 'compile-time strings can only be compared with each other using === or !==');
  }
  if (left.k === 'spec' || right.k === 'spec') throw dslError(node, 'a spec object is not a value; read one of its fields');
  return binary(op, left, right, node);
}

function conditional(ctx: FnContext, node: import('ts-morph').ConditionalExpression): Expr {
  const c = translateCondition(ctx, node.getCondition(), 'the condition of ?:');
  if (isConst(c)) return translateExpr(ctx, c.v ? node.getWhenTrue() : node.getWhenFalse());
  const a = translateExpr(ctx, node.getWhenTrue());
  const b = translateExpr(ctx, node.getWhenFalse());
  const ta = scalarOf(a);
  const tb = scalarOf(b);
  if (!ta || !tb) throw dslError(node, 'both branches of ?: must be scalars');
  if (ta === tb) return { k: 'cond', c, a, b, t: ta };
  const [x, y, t] = unify(a, b, node, '?:');
  return { k: 'cond', c, a: x, b: y, t };
}

function specField(obj: SpecObject, name: string, node: Node): Value {
  if (!Object.hasOwn(obj, name)) throw dslError(node, `the spec has no field \`${name}\``);
  return specValue(obj[name], node);
}

export function specValue(v: SpecValue, node: Node): Value {
  if (typeof v === 'string') return { k: 'str', v };
  if (typeof v === 'boolean') return lit('bool', v);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && Math.abs(v) <= 2 ** 31 - 1) return lit('i32', v);
    if (Number.isInteger(v)) return lit('i64', v);
    return lit('f32', Math.fround(v));
  }
  if (v && typeof v === 'object') return { k: 'spec', v };
  throw dslError(node, `spec value ${String(v)} is not a number, boolean, string or object`);
}

function propertyAccess(ctx: FnContext, node: import('ts-morph').PropertyAccessExpression): Value {
  if (node.hasQuestionDotToken()) throw dslError(node, 'optional chaining (?.) is not allowed: kernel values are never undefined');
  const base = node.getExpression();
  const name = node.getName();
  if (Node.isIdentifier(base) && !ctx.scope.lookup(base.getText())) {
    const dsl = ctx.env.dsl.get(base.getText());
    if (dsl && DIM3.has(dsl)) {
      if (name !== 'x' && name !== 'y' && name !== 'z') throw dslError(node.getNameNode(), `${dsl} has components x, y and z`);
      return { k: 'builtin', name: `${dsl}.${name}` as import('../ir/nodes.js').BuiltinIndex, t: 'i32' };
    }
    if (base.getText() === 'Math' && !dsl) {
      if (name in MATH_CONSTANTS) return lit('f32', Math.fround(MATH_CONSTANTS[name]));
      throw dslError(
        node,
        `Math.${name} is not a kernel constant; constants are ${Object.keys(MATH_CONSTANTS)
          .map((c) => `Math.${c}`)
          .join(', ')}`,
      );
    }
    if (base.getText() === 'Number' && (name === 'POSITIVE_INFINITY' || name === 'NEGATIVE_INFINITY')) {
      return lit('f32', name === 'POSITIVE_INFINITY' ? Infinity : -Infinity);
    }
  }
  const obj = translateValue(ctx, base);
  if (obj.k === 'spec') return specField(obj.v, name, node.getNameNode());
  if (obj.k !== 'str') {
    const t = typeOf(obj);
    if (t.kind === 'array' && name === 'length') return lit('i32', t.length);
  }
  throw dslError(
    node.getNameNode(),
    `property \`${name}\` is not available in kernels: only spec fields, threadIdx/blockIdx/blockDim/gridDim components, Math constants and array .length`,
  );
}

function elementAccess(ctx: FnContext, node: import('ts-morph').ElementAccessExpression): Expr {
  if (node.hasQuestionDotToken()) throw dslError(node, 'optional chaining (?.) is not allowed in kernels');
  const base = translateExpr(ctx, node.getExpression());
  const t: DslType = typeOf(base);
  if (t.kind !== 'pointer' && t.kind !== 'array') throw dslError(node.getExpression(), 'only pointers and arrays can be indexed');
  const arg = node.getArgumentExpressionOrThrow();
  const i = translateExpr(ctx, arg);
  const ti = scalarOf(i);
  if (ti !== 'i32' && ti !== 'u32' && ti !== 'i64') throw dslError(arg, `an index must be i32, u32 or i64, got ${ti ?? 'a pointer'}`);
  if (t.kind === 'array' && isConst(i) && ((i.v as number) < 0 || (i.v as number) >= t.length)) {
    throw dslError(arg, `index ${String(i.v)} is outside the array (length ${t.length})`);
  }
  return { k: 'index', base, i, t: t.elem, loc: locOf(node) };
}

function rejectExpression(node: Node): Error {
  const k = node.getKind();
  const why: Partial<Record<SyntaxKind, string>> = {
    [SyntaxKind.ArrowFunction]: 'closures are not allowed in kernels; declare a helper function at module level',
    [SyntaxKind.FunctionExpression]: 'closures are not allowed in kernels; declare a helper function at module level',
    [SyntaxKind.ObjectLiteralExpression]: 'object literals are not allowed in kernels; use scalars and arrays',
    [SyntaxKind.ArrayLiteralExpression]: 'array literals are not allowed in kernels; use local<T>(n) and assign its elements',
    [SyntaxKind.TemplateExpression]: 'template strings are not allowed in kernels; strings exist only at compile time',
    [SyntaxKind.NewExpression]: '`new` is not allowed in kernels; use shared<T>(n) or local<T>(n) for storage',
    [SyntaxKind.AsExpression]: 'type assertions do not convert values; use f32(x), i32(x), u32(x), f16(x) or convert<T>(x)',
    [SyntaxKind.TypeAssertionExpression]: 'type assertions do not convert values; use f32(x), i32(x), u32(x), f16(x) or convert<T>(x)',
    [SyntaxKind.SatisfiesExpression]: '`satisfies` is not allowed in kernels',
    [SyntaxKind.NonNullExpression]: 'kernel values are never null; remove the `!`',
    [SyntaxKind.AwaitExpression]: 'kernels are synchronous; `await` is not allowed',
    [SyntaxKind.TypeOfExpression]: 'typeof is not allowed in kernels; types are known at compile time',
    [SyntaxKind.DeleteExpression]: 'delete is not allowed in kernels',
    [SyntaxKind.VoidExpression]: 'the void operator is not allowed in kernels',
    [SyntaxKind.SpreadElement]: 'spread is not allowed in kernels',
    [SyntaxKind.ThisKeyword]: '`this` does not exist in kernels',
    [SyntaxKind.NullKeyword]: '`null` does not exist in kernels',
    [SyntaxKind.BigIntLiteral]: 'bigint literals are not allowed; write an integer literal (it adapts to i64) or i64(x)',
    [SyntaxKind.RegularExpressionLiteral]: 'regular expressions are not allowed in kernels',
    [SyntaxKind.ClassExpression]: 'classes are not allowed in kernels',
    [SyntaxKind.PostfixUnaryExpression]: '++ and -- are statements in kernels (`i++;` or a for-loop update), not values',
    [SyntaxKind.TaggedTemplateExpression]: 'tagged templates are not allowed in kernels',
    [SyntaxKind.YieldExpression]: 'kernels are not generators; use syncthreads() to wait for the block',
  };
  return dslError(node, why[k] ?? `${node.getKindName()} is not part of the kernel DSL`);
}
