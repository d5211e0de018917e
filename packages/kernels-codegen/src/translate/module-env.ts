/**
 * What a kernel source file makes visible to kernel code: DSL imports, helper
 * functions (declared here or imported from other kernel modules), type aliases and
 * module-level constants. Resolution is syntactic (import declarations and relative
 * paths), so translation needs no full type-checker program.
 */
import * as path from 'node:path';
import { Node, type FunctionDeclaration, type SourceFile, type TypeNode, type VariableDeclaration } from 'ts-morph';
import { dslError } from './errors.js';

/** Module specifiers that name the DSL. */
const DSL_SPECIFIER = /(^@arkvale\/kernels-codegen\/dsl$)|((^|\/)dsl(\/index)?(\.[jt]s)?$)/;

export interface SourceLoader {
  /** The source file at an absolute path (already in the ts-morph project or read from disk). */
  load(absolutePath: string): SourceFile | undefined;
}

export class ModuleEnv {
  /** Local name -> DSL export name. */
  readonly dsl = new Map<string, string>();
  private readonly imported = new Map<string, { from: string; name: string; node: Node }>();

  constructor(
    readonly file: SourceFile,
    private readonly modules: ModuleEnvs,
  ) {
    for (const decl of file.getImportDeclarations()) {
      const spec = decl.getModuleSpecifierValue();
      const isDsl = DSL_SPECIFIER.test(spec);
      for (const named of decl.getNamedImports()) {
        const local = named.getAliasNode()?.getText() ?? named.getName();
        if (isDsl) this.dsl.set(local, named.getName());
        else if (spec.startsWith('.')) this.imported.set(local, { from: resolveRelative(file, spec), name: named.getName(), node: named });
      }
    }
  }

  /** A helper function visible under `name`, with the module it lives in. */
  functionNamed(name: string): { fn: FunctionDeclaration; env: ModuleEnv } | undefined {
    const local = this.file.getFunction(name);
    if (local) return { fn: local, env: this };
    const imp = this.imported.get(name);
    if (!imp) return undefined;
    const env = this.modules.forPath(imp.from, imp.node);
    const fn = env.file.getFunction(imp.name);
    return fn?.isExported() ? { fn, env } : undefined;
  }

  /** A type alias visible under `name`, with its module. */
  typeAliasNamed(name: string): { node: TypeNode; env: ModuleEnv } | undefined {
    const local = this.file.getTypeAlias(name);
    if (local) return { node: local.getTypeNodeOrThrow(), env: this };
    const imp = this.imported.get(name);
    if (!imp) return undefined;
    const env = this.modules.forPath(imp.from, imp.node);
    const alias = env.file.getTypeAlias(imp.name);
    return alias ? { node: alias.getTypeNodeOrThrow(), env } : undefined;
  }

  /** A module-level `const NAME = <compile-time value>` visible under `name`. */
  constantNamed(name: string): { decl: VariableDeclaration; env: ModuleEnv } | undefined {
    const local = this.file.getVariableDeclaration(name);
    if (local) {
      const stmt = local.getVariableStatement();
      return stmt && Node.isSourceFile(stmt.getParent()) ? { decl: local, env: this } : undefined;
    }
    const imp = this.imported.get(name);
    if (!imp) return undefined;
    const env = this.modules.forPath(imp.from, imp.node);
    const decl = env.file.getVariableDeclaration(imp.name);
    return decl ? { decl, env } : undefined;
  }

  /** Whether `name` is imported from somewhere that kernel code cannot use. */
  isForeignImport(name: string): boolean {
    return (
      this.file.getImportDeclarations().some((d) => d.getNamedImports().some((n) => (n.getAliasNode()?.getText() ?? n.getName()) === name)) &&
      !this.dsl.has(name) &&
      !this.imported.has(name)
    );
  }
}

function resolveRelative(file: SourceFile, specifier: string): string {
  const abs = path.resolve(path.dirname(file.getFilePath()), specifier);
  return abs.replace(/\.js$/, '.ts');
}

/** One ModuleEnv per source file, loaded on demand. */
export class ModuleEnvs {
  private readonly envs = new Map<string, ModuleEnv>();
  constructor(private readonly loader: SourceLoader) {}

  forFile(file: SourceFile): ModuleEnv {
    const key = file.getFilePath();
    let env = this.envs.get(key);
    if (!env) {
      env = new ModuleEnv(file, this);
      this.envs.set(key, env);
    }
    return env;
  }

  forPath(absolutePath: string, importNode: Node): ModuleEnv {
    const file = this.loader.load(absolutePath);
    if (!file) throw dslError(importNode, `cannot read kernel module ${absolutePath}`);
    return this.forFile(file);
  }
}
