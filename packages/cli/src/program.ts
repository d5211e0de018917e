import { Command, CommanderError } from 'commander';
import { ArkvaleError } from '@arkvale/core';
import { codegenCommand } from './commands/codegen.js';
import { evalCommand } from './commands/eval.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { selftestCommand } from './commands/selftest.js';
import { serveCommand } from './commands/serve.js';
import type { CliIo } from './io.js';

/** Exit codes: 0 ok, 1 a failed run, 2 bad usage or input the user can fix. */
function exitCodeOf(e: unknown): number {
  if (e instanceof ArkvaleError) return e.code === 'INTERNAL' ? 1 : 2;
  return 1;
}

/** Runs the CLI; never throws, never calls process.exit: returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // Set by commands that finish with a code of their own (codegen's --check, eval compare).
  let exitCode = 0;
  const program = new Command()
    .name('arkvale')
    .description('LLM inference whose KV cache never forgets: recallable KV eviction (ArkVale) and its baselines')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions();
  generateCommand(program, io);
  evalCommand(program, io, (code) => (exitCode = code));
  inspectCommand(program, io);
  selftestCommand(program, io);
  serveCommand(program, io);
  codegenCommand(program, io, (code) => (exitCode = code));
  program.commands.forEach((c) => c.exitOverride());
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    io.err(`arkvale: error: ${e instanceof Error ? e.message : String(e)}\n`);
    return exitCodeOf(e);
  }
}
