/**
 * The ts-morph project that holds kernel sources. Parsing only: translation resolves
 * names syntactically, so no type-checker program is built unless asked for.
 */
import { existsSync } from 'node:fs';
import { Project, ts, type SourceFile } from 'ts-morph';
import { DslError } from './errors.js';
import { ModuleEnvs, type SourceLoader } from './module-env.js';

export class KernelProject implements SourceLoader {
  readonly project: Project;
  readonly envs: ModuleEnvs;

  constructor(options: { inMemory?: boolean } = {}) {
    this.project = new Project({
      useInMemoryFileSystem: options.inMemory ?? false,
      skipAddingFilesFromTsConfig: true,
      skipFileDependencyResolution: true,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, strict: true, noEmit: true },
    });
    this.envs = new ModuleEnvs(this);
  }

  load(absolutePath: string): SourceFile | undefined {
    const existing = this.project.getSourceFile(absolutePath);
    if (existing) return existing;
    if (this.project.getFileSystem().fileExistsSync(absolutePath) || existsSync(absolutePath)) return this.project.addSourceFileAtPath(absolutePath);
    return undefined;
  }

  /** Adds (or replaces) an in-memory source file, for tests and tools. */
  addSource(path: string, text: string): SourceFile {
    return this.project.createSourceFile(path, text, { overwrite: true });
  }

  file(path: string): SourceFile {
    const f = this.load(path);
    if (!f) throw new Error(`kernel source not found: ${path}`);
    return f;
  }

  /**
   * TypeScript's own diagnostics for a kernel file, as DslErrors (optional: a full
   * program costs about a second; the package's tsc run covers the bundled kernels).
   */
  typeCheck(file: SourceFile): DslError[] {
    return file.getPreEmitDiagnostics().map((d) => {
      const start = d.getStart() ?? 0;
      const { line, column } = file.getLineAndColumnAtPos(start);
      const text = d.getMessageText();
      return new DslError({ file: file.getFilePath(), line, column }, typeof text === 'string' ? text : text.getMessageText());
    });
  }
}
