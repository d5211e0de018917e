import type { Command } from 'commander';
import type { CliIo } from '../io.js';

/**
 * `arkvale codegen ...` forwards every argument to `arkvale-codegen`. The generator
 * (ts-morph, the kernel sources) loads only when this command runs.
 */
export function codegenCommand(program: Command, io: CliIo, setExitCode: (code: number) => void): void {
  program
    .command('codegen')
    .description('generate CUDA kernels specialised for a model shape (arkvale-codegen; see arkvale codegen --help)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .argument('[args...]', 'arguments of arkvale-codegen')
    .action(async (args: string[]) => {
      const { runCodegenCli } = await import('@arkvale/kernels-codegen');
      setExitCode(await runCodegenCli(args, io));
    });
}
