/**
 * Helper functions called from kernels, monomorphised per type arguments and
 * emitted as `__device__ __forceinline__` functions (generators in the emulator when
 * they synchronise).
 */
import { Node, type CallExpression, type FunctionDeclaration, type TypeNode } from 'ts-morph';
import type { Expr, HelperFn, Param } from '../ir/nodes.js';
import { describeType, type DslType, type ScalarName } from '../ir/types.js';
import { coerce, typeOf } from './coerce.js';
import { FnContext } from './context.js';
import { dslError, locOf } from './errors.js';
import { translateExpr, translateValue } from './expressions.js';
import type { ModuleEnv } from './module-env.js';
import { cppName } from './names.js';
import { translateBody } from './statements.js';
import { resolveScalar, resolveType, type TypeArgs } from './type-annotations.js';

/** The compile-time spec parameter is named `spec` (or `_spec` where unused). */
export const isSpecParamName = (name: string | undefined): boolean => name === 'spec' || name === '_spec';

/** Whether a function's first parameter is the compile-time spec. */
export function takesSpec(fn: FunctionDeclaration): boolean {
  return isSpecParamName(fn.getParameters()[0]?.getName());
}

export function callHelper(ctx: FnContext, fn: FunctionDeclaration, env: ModuleEnv, node: CallExpression): Expr {
  checkSignature(fn);
  const params = fn.getParameters();
  const argNodes = node.getArguments();
  const withSpec = takesSpec(fn);
  if (withSpec) {
    const first = argNodes[0] ? translateValue(ctx, argNodes[0]) : undefined;
    if (first?.k !== 'spec' || !ctx.spec) throw dslError(argNodes[0] ?? node, `${fn.getName()} takes the spec first: pass \`spec\``);
  }
  const runtimeParams = withSpec ? params.slice(1) : params;
  const runtimeArgs = withSpec ? argNodes.slice(1) : argNodes;
  if (runtimeArgs.length !== runtimeParams.length) {
    throw dslError(node, `${fn.getName()} takes ${runtimeParams.length} argument(s), got ${runtimeArgs.length}`);
  }
  const args = runtimeArgs.map((a) => translateExpr(ctx, a));
  const typeArgs = bindTypeParameters(
    ctx,
    fn,
    node,
    runtimeParams.map((p) => p.getTypeNode()),
    args,
  );
  const paramTypes = runtimeParams.map((p) => resolveType(p.getTypeNodeOrThrow(), env, typeArgs));
  const coerced = args.map((a, i) => coerce(a, paramTypes[i], runtimeArgs[i], `argument ${i + 1} of ${fn.getName()}`));
  const helper = instantiate(
    ctx,
    fn,
    env,
    typeArgs,
    paramTypes,
    runtimeParams.map((p) => p.getName()),
    node,
  );
  return { k: 'helper', name: helper.name, args: coerced, t: helper.ret, loc: locOf(node) };
}

function checkSignature(fn: FunctionDeclaration): void {
  if (fn.isAsync() || fn.isGenerator()) throw dslError(fn, 'helper functions must be plain synchronous functions');
  if (!fn.getReturnTypeNode()) throw dslError(fn.getNameNode() ?? fn, `helper function ${fn.getName()} needs a declared return type (a DSL type or void)`);
  for (const p of fn.getParameters()) {
    if (p.isRestParameter() || p.hasQuestionToken() || p.hasInitializer())
      throw dslError(p, 'helper parameters cannot be optional, defaulted or rest parameters');
    if (!Node.isIdentifier(p.getNameNode())) throw dslError(p, 'destructured parameters are not allowed; name each parameter');
    if (!isSpecParamName(p.getName()) && !p.getTypeNode()) throw dslError(p, `parameter ${p.getName()} needs a DSL type annotation`);
  }
}

/** Type parameters from explicit type arguments, else unified with the argument types. */
function bindTypeParameters(ctx: FnContext, fn: FunctionDeclaration, call: CallExpression, paramTypes: (TypeNode | undefined)[], args: Expr[]): TypeArgs {
  const names = fn.getTypeParameters().map((t) => t.getName());
  const bound = new Map<string, ScalarName>();
  const explicit = call.getTypeArguments();
  if (explicit.length > 0) {
    if (explicit.length !== names.length) throw dslError(call, `${fn.getName()} takes ${names.length} type argument(s)`);
    names.forEach((n, i) => bound.set(n, resolveScalar(explicit[i], ctx.env, ctx.typeArgs)));
    return bound;
  }
  paramTypes.forEach((tn, i) => {
    if (!tn || !Node.isTypeReference(tn)) return;
    const t = typeOf(args[i]);
    const direct = tn.getTypeName().getText();
    const inner = tn.getTypeArguments()[0];
    if (names.includes(direct) && t.kind === 'scalar') unifyOne(bound, direct, t.name, call);
    else if (inner && Node.isTypeReference(inner) && names.includes(inner.getTypeName().getText()) && (t.kind === 'pointer' || t.kind === 'array')) {
      unifyOne(bound, inner.getTypeName().getText(), t.elem, call);
    }
  });
  for (const n of names)
    if (!bound.has(n)) throw dslError(call, `cannot infer type parameter ${n} of ${fn.getName()}; pass it explicitly (${fn.getName()}<f32>(...))`);
  return bound;
}

function unifyOne(bound: Map<string, ScalarName>, name: string, t: ScalarName, node: Node): void {
  const prev = bound.get(name);
  if (prev && prev !== t) throw dslError(node, `type parameter ${name} would be both ${prev} and ${t}`);
  bound.set(name, t);
}

function instantiate(
  ctx: FnContext,
  fn: FunctionDeclaration,
  env: ModuleEnv,
  typeArgs: TypeArgs,
  paramTypes: DslType[],
  paramNames: string[],
  call: Node,
): HelperFn {
  const base = fn.getName() ?? 'helper';
  const suffix = [...typeArgs.values()].join('_');
  const key = `${fn.getSourceFile().getFilePath()}#${base}<${suffix}>`;
  const unit = ctx.unit;
  const done = unit.helpers.get(key);
  if (done) return done;
  if (unit.inProgress.has(key)) throw dslError(call, `${base} is called while it is being translated: recursion is not allowed in kernels`);
  unit.inProgress.add(key);
  let name = unit.helperNames.get(key);
  if (!name) {
    name = cppName(suffix ? `${base}_${suffix}` : base);
    const taken = new Set(unit.helperNames.values());
    for (let i = 2; taken.has(name); i++) name = `${cppName(base)}_${i}`;
    unit.helperNames.set(key, name);
  }
  const ret = resolveType(fn.getReturnTypeNodeOrThrow(), env, typeArgs);
  if (ret.kind === 'array') throw dslError(fn.getReturnTypeNodeOrThrow(), 'helpers cannot return arrays');
  const inner = new FnContext(env, typeArgs, unit, ret, false, takesSpec(fn) ? ctx.spec : undefined);
  const params: Param[] = [];
  const specParam = takesSpec(fn) ? fn.getParameters()[0] : undefined;
  if (specParam && ctx.spec) inner.scope.declare(specParam.getName(), { kind: 'spec', value: ctx.spec }, specParam);
  const runtime = fn.getParameters().filter((p) => p !== specParam);
  paramNames.forEach((n, i) => {
    const t = paramTypes[i];
    if (t.kind === 'void' || t.kind === 'array') throw dslError(runtime[i], `parameter ${n} cannot be ${describeType(t)}`);
    const emitted = cppName(n);
    params.push({ name: emitted, t });
    inner.scope.declare(n, { kind: 'expr', expr: { k: 'var', name: emitted, t }, mutable: true }, runtime[i]);
  });
  const body = translateBody(inner, fn.getBodyOrThrow());
  const helper: HelperFn = { name, params, ret, body };
  unit.inProgress.delete(key);
  unit.helpers.set(key, helper);
  return helper;
}
