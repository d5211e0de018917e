import { fileURLToPath } from 'node:url';
import type { CliIo } from './io.js';
import { runCli } from './program.js';

export const modelDir = fileURLToPath(new URL('../../../models/tiny-retrieval', import.meta.url));

/** Runs the CLI in-process with captured output. */
export async function cli(args: string[], stdin: string | null = null): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), readStdin: async () => stdin, interactive: false };
  const code = await runCli(args, io);
  return { code, out, err };
}
