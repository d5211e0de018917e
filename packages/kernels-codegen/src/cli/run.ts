/** The `arkvale-codegen` command, as a function (`arkvale codegen` forwards here). */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { generate, selectKernels } from '../output/generate.js';
import { KERNELS } from '../kernels/index.js';
import { DslError } from '../translate/errors.js';
import { parseCliArgs, USAGE, UsageError } from './options.js';

export interface CodegenIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const processIo: CodegenIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

function version(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
  return pkg.version;
}

/**
 * Runs the CLI; never throws and never exits the process: returns the exit code
 * (0 ok, 1 `--check` found stale output, 2 bad usage or a kernel, shape or option
 * the generator rejects).
 */
export async function runCodegenCli(argv: readonly string[], io: CodegenIo = processIo): Promise<number> {
  try {
    const opts = parseCliArgs(argv);
    if (opts.help) {
      io.out(USAGE);
      return 0;
    }
    if (opts.version) {
      io.out(`${version()}\n`);
      return 0;
    }
    if (opts.list) {
      for (const def of selectKernels(KERNELS, opts.families)) {
        const names = def.specs(opts.matrix).map((s) => def.name(s));
        io.out(`${def.family} (${names.length}): ${names.join(' ')}\n`);
      }
      return 0;
    }
    const started = performance.now();
    const report = generate({ outDir: opts.outDir, matrix: opts.matrix, families: opts.families, merge: opts.merge, dryRun: opts.check });
    const rel = path.relative(process.cwd(), opts.outDir);
    const where = rel === '' ? '.' : rel.startsWith('..') ? path.resolve(opts.outDir) : rel;
    const kernels = report.manifest.kernels.length;
    if (opts.check) {
      const stale = [...report.written, ...report.removed];
      if (stale.length > 0) {
        io.err(`arkvale-codegen: ${where} is out of date (${stale.length} file(s) would change, e.g. ${stale[0]}); run without --check\n`);
        return 1;
      }
      if (!opts.quiet) io.out(`arkvale-codegen: ${where} is up to date (${kernels} kernels)\n`);
      return 0;
    }
    if (!opts.quiet) {
      const ms = Math.round(performance.now() - started);
      io.out(
        `arkvale-codegen: ${kernels} kernels in ${where}: ${report.written.length} file(s) written, ` +
          `${report.unchanged.length} unchanged, ${report.removed.length} removed (${ms} ms)\n`,
      );
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`arkvale-codegen: ${e.message}\n(run with --help for usage)\n`);
      return 2;
    }
    if (e instanceof DslError) {
      io.err(`${e.message}\n`);
      return 2;
    }
    io.err(`arkvale-codegen: error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
}
