/** Reads DSL types from TypeScript annotations (alias names, not TypeScript's view of them). */
import { Node, SyntaxKind, type TypeNode } from 'ts-morph';
import { isScalarName, type DslType, type ScalarName } from '../ir/types.js';
import { dslError } from './errors.js';
import type { ModuleEnv } from './module-env.js';

const ALLOWED = 'f16, bf16, f32, i32, u32, i64, u8, bool, Global<T>, GlobalIn<T>, Shared<T>, Local<T> or a type parameter bound by the kernel definition';

const POINTERS: Record<string, { space: 'global' | 'shared' | 'local'; readonly: boolean }> = {
  Global: { space: 'global', readonly: false },
  GlobalIn: { space: 'global', readonly: true },
  Shared: { space: 'shared', readonly: false },
  Local: { space: 'local', readonly: false },
};

/** Type parameters in scope (the kernel's from its definition, a helper's from its call). */
export type TypeArgs = ReadonlyMap<string, ScalarName>;

export function resolveType(node: TypeNode, env: ModuleEnv, typeArgs: TypeArgs): DslType {
  if (node.getKind() === SyntaxKind.BooleanKeyword) return { kind: 'scalar', name: 'bool' };
  if (node.getKind() === SyntaxKind.VoidKeyword) return { kind: 'void' };
  if (node.getKind() === SyntaxKind.NumberKeyword) {
    throw dslError(node, '`number` does not say which machine type to use: write f32, i32, u32 or i64');
  }
  if (!Node.isTypeReference(node)) throw dslError(node, `type \`${node.getText()}\` is not a kernel type; use ${ALLOWED}`);
  const name = node.getTypeName().getText();
  const args = node.getTypeArguments();
  const bound = typeArgs.get(name);
  if (bound) return { kind: 'scalar', name: bound };
  const dslName = env.dsl.get(name);
  if (dslName && isScalarName(dslName)) return { kind: 'scalar', name: dslName };
  if (dslName && POINTERS[dslName]) {
    if (args.length !== 1) throw dslError(node, `${dslName}<T> takes one element type`);
    const elem = resolveType(args[0], env, typeArgs);
    if (elem.kind !== 'scalar') throw dslError(args[0], `elements of ${dslName} must be scalars (${describeScalars()})`);
    return { kind: 'pointer', elem: elem.name, ...POINTERS[dslName] };
  }
  const alias = env.typeAliasNamed(name);
  if (alias) {
    if (args.length > 0) throw dslError(node, `generic type aliases are not supported in kernels; write the type out`);
    return resolveType(alias.node, alias.env, typeArgs);
  }
  if (typeArgs.size === 0 && /^[A-Z]$/.test(name)) {
    throw dslError(node, `type parameter ${name} is not bound: the kernel definition's \`types(spec)\` must give it a scalar type`);
  }
  throw dslError(node, `unknown kernel type \`${name}\`; use ${ALLOWED}`);
}

/** The scalar a type node names, or an error. */
export function resolveScalar(node: TypeNode, env: ModuleEnv, typeArgs: TypeArgs): ScalarName {
  const t = resolveType(node, env, typeArgs);
  if (t.kind !== 'scalar') throw dslError(node, `expected a scalar type (${describeScalars()})`);
  return t.name;
}

const describeScalars = (): string => 'f16, bf16, f32, i32, u32, i64, u8, bool';
