import type { Command } from 'commander';
import { ArkvaleError } from '@arkvale/core';
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
      let generator: typeof import('@arkvale/kernels-codegen');
      try {
        generator = await import('@arkvale/kernels-codegen');
      } catch (e) {
        // The self-contained bundle (pnpm bundle) leaves the generator out.
        throw new ArkvaleError(
          'INVALID_ARGUMENT',
          `arkvale codegen needs @arkvale/kernels-codegen, which is not installed here (${(e as Error).message}); install @arkvale/cli from npm to generate kernels`,
        );
      }
      setExitCode(await generator.runCodegenCli(args, io));
    });
}
