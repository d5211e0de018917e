/** TypeScript statements -> IR statements; compile-time `if`s fold away. */
import { Node, SyntaxKind, VariableDeclarationKind, type Block, type Statement, type VariableDeclaration } from 'ts-morph';
import { hasBarrier } from '../ir/barriers.js';
import type { AssignOp, Expr, Stmt } from '../ir/nodes.js';
import { describeType, sizeOf, type DslType } from '../ir/types.js';
import { binary, isConst, lit } from './build.js';
import { coerce, scalarOf, typeOf } from './coerce.js';
import type { FnContext } from './context.js';
import { dslError, locOf } from './errors.js';
import { translateCondition, translateExpr, translateValue } from './expressions.js';
import { cppName } from './names.js';
import { resolveScalar, resolveType } from './type-annotations.js';

/** Loops whose trip count folds to at most this many iterations get `#pragma unroll`. */
const MAX_UNROLL = 128;

export function translateBody(ctx: FnContext, body: Node): Stmt[] {
  if (!Node.isBlock(body)) throw dslError(body, 'a function body must be a block');
  const out = translateStatements(ctx, body.getStatements(), true);
  if (ctx.returnType.kind !== 'void') {
    const last = body.getStatements().at(-1);
    if (!last || !Node.isReturnStatement(last)) throw dslError(body, 'a helper that returns a value must end with a return statement');
  }
  return out;
}

function translateStatements(ctx: FnContext, stmts: readonly Statement[], topLevel = false): Stmt[] {
  const out: Stmt[] = [];
  for (const s of stmts) {
    for (const c of s.getLeadingCommentRanges()) out.push(...comment(c.getText()));
    out.push(...translateStatement(ctx, s, topLevel));
    // Code after an unconditional return/break/continue (often left by a folded
    // compile-time if) is unreachable: drop it rather than emit dead code.
    const last = out.at(-1);
    if (last && endsInJump(last)) break;
  }
  return out;
}

function endsInJump(s: Stmt): boolean {
  if (s.k === 'return' || s.k === 'break' || s.k === 'continue') return true;
  return s.k === 'block' && s.body.length > 0 && endsInJump(s.body[s.body.length - 1]);
}

/** A folded branch is spliced into the enclosing block, braced if it declares names. */
function spliced(stmts: Stmt[]): Stmt[] {
  return stmts.some((s) => s.k === 'decl' || s.k === 'array') ? [{ k: 'block', body: stmts }] : stmts;
}

function comment(text: string): Stmt[] {
  const lines = text.startsWith('//')
    ? [text.slice(2).trim()]
    : text
        .replace(/^\/\*+/, '')
        .replace(/\*+\/$/, '')
        .split('\n')
        .map((l) => l.replace(/^\s*\*?\s?/, '').trimEnd())
        .filter((l, i, all) => l !== '' || (i > 0 && i < all.length - 1));
  return lines.map((l) => ({ k: 'comment', text: l }));
}

function block(ctx: FnContext, node: Statement): Stmt[] {
  return ctx.nested(() => (Node.isBlock(node) ? translateStatements(ctx, node.getStatements()) : translateStatement(ctx, node, false)));
}

function translateStatement(ctx: FnContext, node: Statement, topLevel: boolean): Stmt[] {
  if (Node.isVariableStatement(node)) return variables(ctx, node.getDeclarationList().getDeclarationKind(), node.getDeclarations(), node, topLevel);
  if (Node.isExpressionStatement(node)) return [expressionStatement(ctx, node.getExpression())];
  if (Node.isIfStatement(node)) {
    const c = translateCondition(ctx, node.getExpression(), 'an if condition');
    const otherwise = node.getElseStatement();
    if (isConst(c)) return c.v ? spliced(block(ctx, node.getThenStatement())) : otherwise ? spliced(block(ctx, otherwise)) : [];
    const then = block(ctx, node.getThenStatement());
    return [{ k: 'if', c, then, else: otherwise ? block(ctx, otherwise) : undefined }];
  }
  if (Node.isForStatement(node)) return [forStatement(ctx, node)];
  if (Node.isWhileStatement(node)) {
    const c = translateCondition(ctx, node.getExpression(), 'a while condition');
    return [{ k: 'while', c, body: loopBody(ctx, node.getStatement()) }];
  }
  if (Node.isDoStatement(node)) {
    const body = loopBody(ctx, node.getStatement());
    return [{ k: 'dowhile', c: translateCondition(ctx, node.getExpression(), 'a do-while condition'), body }];
  }
  if (Node.isBreakStatement(node) || Node.isContinueStatement(node)) {
    if (node.getLabel()) throw dslError(node, 'labelled break/continue is not allowed; restructure the loop');
    if (ctx.loopDepth === 0) throw dslError(node, `${node.getKindName()} outside a loop`);
    return [{ k: Node.isBreakStatement(node) ? 'break' : 'continue' }];
  }
  if (Node.isReturnStatement(node)) return [returnStatement(ctx, node.getExpression(), node)];
  if (Node.isBlock(node)) return [{ k: 'block', body: ctx.nested(() => translateStatements(ctx, (node as Block).getStatements())) }];
  if (Node.isEmptyStatement(node)) return [];
  throw rejectStatement(node);
}

function loopBody(ctx: FnContext, body: Statement): Stmt[] {
  ctx.loopDepth++;
  try {
    return block(ctx, body);
  } finally {
    ctx.loopDepth--;
  }
}

function returnStatement(ctx: FnContext, e: Node | undefined, node: Node): Stmt {
  if (ctx.returnType.kind === 'void') {
    if (e) throw dslError(e, ctx.isKernel ? 'kernels return nothing; write results through a Global pointer' : 'this helper returns void');
    return { k: 'return' };
  }
  if (!e) throw dslError(node, `return needs a ${describeType(ctx.returnType)} value`);
  return { k: 'return', e: coerce(translateExpr(ctx, e), ctx.returnType, e, 'return value') };
}

function variables(ctx: FnContext, kind: VariableDeclarationKind, decls: VariableDeclaration[], node: Node, topLevel: boolean): Stmt[] {
  if (kind === VariableDeclarationKind.Var) throw dslError(node, '`var` is not allowed; use let or const');
  if (kind !== VariableDeclarationKind.Let && kind !== VariableDeclarationKind.Const) throw dslError(node, 'only let and const declarations are allowed');
  return decls.flatMap((d) => declaration(ctx, d, kind === VariableDeclarationKind.Const, topLevel));
}

function declaration(ctx: FnContext, d: VariableDeclaration, isConstDecl: boolean, topLevel: boolean): Stmt[] {
  const nameNode = d.getNameNode();
  if (!Node.isIdentifier(nameNode)) throw dslError(nameNode, 'destructuring is not allowed in kernels; declare one variable at a time');
  const name = nameNode.getText();
  if (name.startsWith('$')) throw dslError(nameNode, 'names starting with $ are reserved for the emulator');
  const init = d.getInitializer();
  const annotation = d.getTypeNode();
  const storage = init && storageCall(ctx, init);
  if (storage) return [arrayDeclaration(ctx, d, name, storage, isConstDecl, topLevel)];
  if (!init) {
    if (isConstDecl) throw dslError(d, 'a const needs an initializer');
    if (!annotation) throw dslError(d, `\`let ${name}\` needs a type annotation or an initializer`);
    const t = resolveType(annotation, ctx.env, ctx.typeArgs);
    if (t.kind !== 'scalar') throw dslError(annotation, 'uninitialised variables must be scalars');
    return declareVar(ctx, d, name, t, undefined, false);
  }
  const v = translateValue(ctx, init);
  if (v.k === 'str' || v.k === 'spec') {
    if (!isConstDecl) throw dslError(d, 'compile-time strings and spec objects can only be bound with const');
    ctx.scope.declare(name, v.k === 'str' ? { kind: 'string', value: v.v } : { kind: 'spec', value: v.v }, nameNode);
    return [];
  }
  let e = v;
  let t: DslType = typeOf(e);
  if (annotation) {
    t = resolveType(annotation, ctx.env, ctx.typeArgs);
    e = coerce(e, t, init, `the initializer of ${name}`);
  } else if (t.kind === 'array') {
    t = { kind: 'pointer', space: t.space, elem: t.elem, readonly: false };
  }
  if (t.kind === 'void') throw dslError(init, `${name} cannot hold the result of a void call`);
  if (isConstDecl && isConst(e)) {
    // A compile-time constant: folded into every use, never emitted.
    ctx.scope.declare(name, { kind: 'expr', expr: e, mutable: false }, nameNode);
    return [];
  }
  return declareVar(ctx, d, name, t, e, isConstDecl);
}

function declareVar(ctx: FnContext, d: VariableDeclaration, name: string, t: DslType, init: Expr | undefined, isConstDecl: boolean): Stmt[] {
  const emitted = cppName(name);
  ctx.scope.declare(name, { kind: 'expr', expr: { k: 'var', name: emitted, t }, mutable: !isConstDecl }, d.getNameNode());
  return [{ k: 'decl', name: emitted, t, init, isConst: isConstDecl }];
}

/** `shared<T>(n)` / `local<T>(n)` initialisers. */
function storageCall(ctx: FnContext, init: Node): { space: 'shared' | 'local'; node: import('ts-morph').CallExpression } | undefined {
  if (!Node.isCallExpression(init)) return undefined;
  const callee = init.getExpression();
  if (!Node.isIdentifier(callee) || ctx.scope.lookup(callee.getText())) return undefined;
  const dsl = ctx.env.dsl.get(callee.getText());
  return dsl === 'shared' || dsl === 'local' ? { space: dsl, node: init } : undefined;
}

function arrayDeclaration(
  ctx: FnContext,
  d: VariableDeclaration,
  name: string,
  s: { space: 'shared' | 'local'; node: import('ts-morph').CallExpression },
  isConstDecl: boolean,
  topLevel: boolean,
): Stmt {
  const call = s.node;
  if (!isConstDecl) throw dslError(d, `${s.space}<T>(n) storage must be bound with const`);
  if (s.space === 'shared' && !(ctx.isKernel && topLevel)) throw dslError(call, 'shared<T>(n) is allowed only at the top level of a kernel function');
  const targs = call.getTypeArguments();
  if (targs.length !== 1) throw dslError(call, `${s.space}<T>(n) needs its element type: ${s.space}<f32>(n)`);
  const elem = resolveScalar(targs[0], ctx.env, ctx.typeArgs);
  const args = call.getArguments();
  if (args.length !== 1) throw dslError(call, `${s.space}<T>(n) takes one length argument`);
  const len = translateExpr(ctx, args[0]);
  if (!isConst(len) || typeof len.v !== 'number' || !Number.isInteger(len.v) || len.v < 1) {
    throw dslError(args[0], `the length of ${s.space} storage must be a positive compile-time integer (fold it from spec fields)`);
  }
  const t = { kind: 'array', space: s.space, elem, length: len.v } as const;
  const emitted = cppName(name);
  ctx.scope.declare(name, { kind: 'expr', expr: { k: 'var', name: emitted, t }, mutable: false }, d.getNameNode());
  if (s.space === 'shared') ctx.unit.sharedBytes = alignUp(ctx.unit.sharedBytes, 16) + len.v * sizeOf(elem);
  return { k: 'array', name: emitted, t };
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

const ASSIGN_OPS: Partial<Record<SyntaxKind, AssignOp>> = {
  [SyntaxKind.EqualsToken]: '=',
  [SyntaxKind.PlusEqualsToken]: '+=',
  [SyntaxKind.MinusEqualsToken]: '-=',
  [SyntaxKind.AsteriskEqualsToken]: '*=',
  [SyntaxKind.SlashEqualsToken]: '/=',
  [SyntaxKind.PercentEqualsToken]: '%=',
  [SyntaxKind.AmpersandEqualsToken]: '&=',
  [SyntaxKind.BarEqualsToken]: '|=',
  [SyntaxKind.CaretEqualsToken]: '^=',
  [SyntaxKind.LessThanLessThanEqualsToken]: '<<=',
  [SyntaxKind.GreaterThanGreaterThanEqualsToken]: '>>=',
  [SyntaxKind.GreaterThanGreaterThanGreaterThanEqualsToken]: '>>>=',
};

function expressionStatement(ctx: FnContext, e: Node): Stmt {
  if (Node.isBinaryExpression(e)) {
    const op = ASSIGN_OPS[e.getOperatorToken().getKind()];
    if (op) return assignment(ctx, e.getLeft(), op, translateExpr(ctx, e.getRight()), e.getRight(), e);
  }
  if (
    (Node.isPrefixUnaryExpression(e) || Node.isPostfixUnaryExpression(e)) &&
    [SyntaxKind.PlusPlusToken, SyntaxKind.MinusMinusToken].includes(e.getOperatorToken())
  ) {
    const op = e.getOperatorToken() === SyntaxKind.PlusPlusToken ? '+=' : '-=';
    return assignment(ctx, e.getOperand(), op, lit('i32', 1), e, e);
  }
  if (Node.isCallExpression(e)) return { k: 'expr', e: translateExpr(ctx, e) };
  if (Node.isParenthesizedExpression(e)) return expressionStatement(ctx, e.getExpression());
  throw dslError(e, 'this expression statement has no effect; statements are assignments, ++/--, or calls');
}

function assignment(ctx: FnContext, targetNode: Node, op: AssignOp, value: Expr, valueNode: Node, node: Node): Stmt {
  const target = assignable(ctx, targetNode);
  const tt = typeOf(target);
  if (tt.kind !== 'scalar') throw dslError(targetNode, 'only scalar variables and elements can be assigned');
  if (op === '=') return { k: 'assign', target, op, value: coerce(value, tt, valueNode, `assignment to ${targetNode.getText()}`), loc: locOf(node) };
  // Type-check `target op value` as a binary expression; the result must fit the target.
  const bop = op.slice(0, -1) as import('../ir/nodes.js').ArithOp;
  const combined = binary(bop, target, value, node);
  if (scalarOf(combined) !== tt.name) {
    throw dslError(
      node,
      `${targetNode.getText()} ${op} ... computes a ${scalarOf(combined)}, which does not fit ${tt.name} implicitly; write ${targetNode.getText()} = ${tt.name}(...)`,
    );
  }
  const shift = bop === '<<' || bop === '>>' || bop === '>>>';
  const v = shift ? value : coerce(value, tt, valueNode, `${op}`);
  return { k: 'assign', target, op, value: v, loc: locOf(node) };
}

function assignable(ctx: FnContext, node: Node): Expr {
  if (Node.isIdentifier(node)) {
    const b = ctx.scope.lookup(node.getText());
    if (b?.kind !== 'expr') throw dslError(node, `\`${node.getText()}\` is not a variable of this function`);
    if (!b.mutable || b.expr.k !== 'var') throw dslError(node, `\`${node.getText()}\` is const`);
    return b.expr;
  }
  if (Node.isElementAccessExpression(node)) {
    const e = translateExpr(ctx, node);
    if (e.k !== 'index') throw dslError(node, 'not an element');
    const bt = typeOf(e.base);
    if (bt.kind === 'pointer' && bt.readonly) throw dslError(node, `cannot write through read-only ${describeType(bt)}; declare the parameter Global<T>`);
    return e;
  }
  if (Node.isParenthesizedExpression(node)) return assignable(ctx, node.getExpression());
  throw dslError(node, 'only variables and array elements can be assigned');
}

function forStatement(ctx: FnContext, node: import('ts-morph').ForStatement): Stmt {
  return ctx.nested(() => {
    const initNode = node.getInitializer();
    let init: Stmt | undefined;
    if (initNode && Node.isVariableDeclarationList(initNode)) {
      const decls = variables(ctx, initNode.getDeclarationKind(), initNode.getDeclarations(), initNode, false);
      if (decls.length !== 1) throw dslError(initNode, 'a for loop declares exactly one runtime variable');
      init = decls[0];
    } else if (initNode) {
      init = expressionStatement(ctx, initNode);
    }
    const condNode = node.getCondition();
    const c = condNode ? translateCondition(ctx, condNode, 'a for condition') : undefined;
    const updNode = node.getIncrementor();
    const update = updNode ? expressionStatement(ctx, updNode) : undefined;
    if (update && update.k !== 'assign') throw dslError(updNode!, 'a for-loop update must be an assignment, ++ or --');
    const body = loopBody(ctx, node.getStatement());
    // Fully unrolling a loop that synchronises the block only bloats code (and compile time).
    const byName = new Map([...ctx.unit.helpers.values()].map((h) => [h.name, h]));
    const unroll = tripCount(init, c, update) !== undefined && !hasBarrier(body, byName);
    return { k: 'for', init, c, update, body, unroll };
  });
}

/** The trip count of `for (let i = A; i < B; i += S)` when A, B and S fold; else undefined. */
function tripCount(init: Stmt | undefined, c: Expr | undefined, update: Stmt | undefined): number | undefined {
  if (init?.k !== 'decl' || !init.init || !isConst(init.init) || !c || c.k !== 'binary' || !update || update.k !== 'assign') return undefined;
  if (c.a.k !== 'var' || c.a.name !== init.name || !isConst(c.b) || update.target.k !== 'var' || update.target.name !== init.name || !isConst(update.value))
    return undefined;
  const a = init.init.v as number;
  const b = c.b.v as number;
  const step = (update.op === '+=' ? 1 : update.op === '-=' ? -1 : 0) * (update.value.v as number);
  if (step === 0) return undefined;
  let n: number;
  if (c.op === '<') n = Math.ceil((b - a) / step);
  else if (c.op === '<=') n = Math.floor((b - a) / step) + 1;
  else if (c.op === '>') n = Math.ceil((a - b) / -step);
  else if (c.op === '>=') n = Math.floor((a - b) / -step) + 1;
  else return undefined;
  return n >= 0 && n <= MAX_UNROLL ? n : undefined;
}

function rejectStatement(node: Node): Error {
  const why: Partial<Record<SyntaxKind, string>> = {
    [SyntaxKind.SwitchStatement]: 'switch is not allowed; use if / else if (compile-time conditions fold away)',
    [SyntaxKind.ForOfStatement]: 'for...of is not allowed; use a counted for loop',
    [SyntaxKind.ForInStatement]: 'for...in is not allowed; use a counted for loop',
    [SyntaxKind.TryStatement]: 'try/catch is not allowed: kernels cannot throw',
    [SyntaxKind.ThrowStatement]: 'throw is not allowed: kernels cannot throw; write an error flag through a Global pointer',
    [SyntaxKind.FunctionDeclaration]: 'nested functions are not allowed; declare helper functions at module level',
    [SyntaxKind.ClassDeclaration]: 'classes are not allowed in kernels',
    [SyntaxKind.LabeledStatement]: 'labels are not allowed; restructure the loop',
    [SyntaxKind.DebuggerStatement]: 'debugger is not allowed in kernels',
    [SyntaxKind.TypeAliasDeclaration]: 'declare type aliases at module level',
    [SyntaxKind.InterfaceDeclaration]: 'declare interfaces at module level',
  };
  return dslError(node, why[node.getKind()] ?? `${node.getKindName()} is not part of the kernel DSL`);
}
