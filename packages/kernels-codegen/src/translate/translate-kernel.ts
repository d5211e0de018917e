/** Entry point: one kernel function + one spec -> one specialised KernelIR. */
import { Node, type SourceFile } from 'ts-morph';
import type { KernelIR, Param } from '../ir/nodes.js';
import { pruneUnused } from '../ir/prune.js';
import type { ScalarName } from '../ir/types.js';
import { FnContext, type SpecObject, type TranslationUnit } from './context.js';
import { dslError } from './errors.js';
import type { ModuleEnvs } from './module-env.js';
import { cppName } from './names.js';
import { isSpecParamName } from './helpers.js';
import { translateBody } from './statements.js';
import { resolveType } from './type-annotations.js';

export interface KernelRequest {
  readonly file: SourceFile;
  /** The exported kernel function's name in `file`. */
  readonly functionName: string;
  /** The specialisation's C name (`paged_decode_f16_hd128_ps32_g4`). */
  readonly name: string;
  readonly spec: SpecObject;
  /** Scalar types bound to the kernel function's type parameters. */
  readonly typeArgs: Readonly<Record<string, ScalarName>>;
  readonly blockThreads: number;
}

export function translateKernel(envs: ModuleEnvs, req: KernelRequest): KernelIR {
  const fn = req.file.getFunction(req.functionName);
  if (!fn) throw new Error(`${req.file.getFilePath()}: no function named ${req.functionName}`);
  const nameNode = fn.getNameNode() ?? fn;
  if (!fn.isExported()) throw dslError(nameNode, `kernel ${req.functionName} must be exported`);
  if (fn.isAsync() || fn.isGenerator()) throw dslError(nameNode, 'kernels must be plain synchronous functions');
  const ret = fn.getReturnTypeNode();
  if (ret && ret.getText() !== 'void') throw dslError(ret, 'kernels return void; write results through Global pointers');
  const typeArgs = new Map<string, ScalarName>();
  for (const tp of fn.getTypeParameters()) {
    const bound = req.typeArgs[tp.getName()];
    if (!bound) throw dslError(tp, `type parameter ${tp.getName()} is not bound: the kernel definition's types(spec) must give it a scalar type`);
    typeArgs.set(tp.getName(), bound);
  }
  const unit: TranslationUnit = { envs, helpers: new Map(), inProgress: new Set(), helperNames: new Map(), sharedBytes: 0 };
  const env = envs.forFile(req.file);
  const ctx = new FnContext(env, typeArgs, unit, { kind: 'void' }, true, req.spec);
  const params: Param[] = [];
  fn.getParameters().forEach((p, i) => {
    if (!Node.isIdentifier(p.getNameNode())) throw dslError(p, 'destructured parameters are not allowed; name each parameter');
    if (p.isRestParameter() || p.hasQuestionToken() || p.hasInitializer())
      throw dslError(p, 'kernel parameters cannot be optional, defaulted or rest parameters');
    if (i === 0 && isSpecParamName(p.getName())) {
      ctx.scope.declare(p.getName(), { kind: 'spec', value: req.spec }, p);
      return;
    }
    const tn = p.getTypeNode();
    if (!tn) throw dslError(p, `kernel parameter ${p.getName()} needs a DSL type annotation`);
    const t = resolveType(tn, env, typeArgs);
    if (t.kind === 'void' || t.kind === 'array' || (t.kind === 'pointer' && t.space !== 'global')) {
      throw dslError(tn, 'kernel parameters are scalars or Global/GlobalIn pointers');
    }
    if (t.kind === 'scalar' && (t.name === 'f16' || t.name === 'bf16' || t.name === 'bool')) {
      throw dslError(tn, `kernel parameters cannot be ${t.name}; pass an f32 or i32`);
    }
    const name = cppName(p.getName());
    params.push({ name, t });
    ctx.scope.declare(p.getName(), { kind: 'expr', expr: { k: 'var', name, t }, mutable: true }, p);
  });
  const body = pruneUnused(translateBody(ctx, fn.getBodyOrThrow()));
  return {
    name: req.name,
    params,
    body,
    helpers: [...unit.helpers.values()].map((h) => ({
      ...h,
      body: pruneUnused(
        h.body,
        h.params.map((p) => p.name),
      ),
    })),
    blockThreads: req.blockThreads,
    staticSharedBytes: unit.sharedBytes,
    dynamicSharedBytes: 0,
    sourceFile: req.file.getFilePath(),
  };
}
