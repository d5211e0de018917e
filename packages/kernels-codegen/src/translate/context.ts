/** State of one function's translation: scopes, the spec, type arguments, the unit. */
import type { Node } from 'ts-morph';
import type { Expr, HelperFn } from '../ir/nodes.js';
import type { DslType } from '../ir/types.js';
import { dslError } from './errors.js';
import type { ModuleEnv, ModuleEnvs } from './module-env.js';
import type { TypeArgs } from './type-annotations.js';

/** Compile-time values a spec may hold. */
export type SpecValue = number | boolean | string | SpecObject;
export interface SpecObject {
  readonly [key: string]: SpecValue;
}

export type Binding =
  /** A runtime variable (`var` expression) or a folded compile-time constant (`lit`). */
  | { readonly kind: 'expr'; readonly expr: Expr; readonly mutable: boolean }
  /** A compile-time string (a spec field such as the digest variant). */
  | { readonly kind: 'string'; readonly value: string }
  /** The spec, or an object inside it. */
  | { readonly kind: 'spec'; readonly value: SpecObject };

export class Scope {
  private readonly names = new Map<string, Binding>();
  constructor(readonly parent?: Scope) {}
  lookup(name: string): Binding | undefined {
    return this.names.get(name) ?? this.parent?.lookup(name);
  }
  declare(name: string, binding: Binding, node: Node): void {
    if (this.names.has(name)) throw dslError(node, `\`${name}\` is already declared in this scope`);
    this.names.set(name, binding);
  }
}

/** Everything shared by a kernel and the helpers it calls. */
export interface TranslationUnit {
  readonly envs: ModuleEnvs;
  /** Monomorphised helpers by key, in completion order (callees before callers). */
  readonly helpers: Map<string, HelperFn>;
  /** Keys of helpers being translated (recursion check). */
  readonly inProgress: Set<string>;
  readonly helperNames: Map<string, string>;
  /** Static shared memory so far, bytes (16-byte aligned arrays). */
  sharedBytes: number;
}

export class FnContext {
  scope: Scope;
  loopDepth = 0;
  constructor(
    readonly env: ModuleEnv,
    readonly typeArgs: TypeArgs,
    readonly unit: TranslationUnit,
    readonly returnType: DslType,
    readonly isKernel: boolean,
    readonly spec: SpecObject | undefined,
  ) {
    this.scope = new Scope();
  }

  /** Runs `f` in a nested block scope. */
  nested<T>(f: () => T): T {
    const saved = this.scope;
    this.scope = new Scope(saved);
    try {
      return f();
    } finally {
      this.scope = saved;
    }
  }
}
