/** `arkvale-codegen` arguments -> generator options. */
import { parseArgs } from 'node:util';
import { DEFAULT_MATRIX, DIGEST_VARIANTS, DTYPES, type DType, type DigestVariant, type Matrix } from '../spec/matrix.js';

export class UsageError extends Error {}

export const USAGE = `Usage: arkvale-codegen [options]

Generates ArkVale's CUDA kernels, their manifest and TypeScript launch surface for
the given shapes (lists as a,b,c or repeated flags; unset lists use the default
matrix: ${DEFAULT_MATRIX.headDim.join(',')} head dims, pages of ${DEFAULT_MATRIX.pageSize.join(',')}, ${DEFAULT_MATRIX.dtype.join(',')}, groups ${DEFAULT_MATRIX.group.join(',')}).

Options:
  --out DIR          output folder (default: generated)
  --head-dim LIST    head dimensions (multiples of 32 up to 256)
  --page-size LIST   tokens per KV page (powers of two)
  --dtype LIST       ${DTYPES.join(', ')}
  --group LIST       GQA group sizes (query heads per KV head)
  --digest LIST      ${DIGEST_VARIANTS.join(', ')}
  --kernel LIST      only these kernel families (see --list)
  --merge            keep kernels already in DIR's manifest that this run does not generate
  --check            write nothing; exit 1 if DIR is not up to date (for CI)
  --list             print the specialisations this run would generate, then exit
  --quiet            print only errors
  -h, --help         this help
  -v, --version      the generator version

Example (a new model shape, added to an existing build):
  arkvale-codegen --head-dim 256 --page-size 8 --dtype bf16 --group 4 --merge --out generated
`;

export interface CliOptions {
  readonly outDir: string;
  readonly matrix: Matrix;
  readonly families?: readonly string[];
  readonly merge: boolean;
  readonly check: boolean;
  readonly list: boolean;
  readonly quiet: boolean;
  readonly help: boolean;
  readonly version: boolean;
}

function list(values: readonly string[] | undefined): string[] | undefined {
  if (!values) return undefined;
  const items = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  return items.length > 0 ? [...new Set(items)] : undefined;
}

function integers(flag: string, values: readonly string[] | undefined, fallback: readonly number[]): number[] {
  const items = list(values);
  if (!items) return [...fallback];
  return items.map((v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag}: ${JSON.stringify(v)} is not a positive integer`);
    return n;
  });
}

function choices<T extends string>(flag: string, values: readonly string[] | undefined, allowed: readonly T[], fallback: readonly T[]): T[] {
  const items = list(values);
  if (!items) return [...fallback];
  for (const v of items) {
    if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${flag}: ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  }
  return items as T[];
}

export function parseCliArgs(argv: readonly string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: 'string' },
        'head-dim': { type: 'string', multiple: true },
        'page-size': { type: 'string', multiple: true },
        dtype: { type: 'string', multiple: true },
        group: { type: 'string', multiple: true },
        digest: { type: 'string', multiple: true },
        kernel: { type: 'string', multiple: true },
        merge: { type: 'boolean', default: false },
        check: { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  const matrix: Matrix = {
    headDim: integers('head-dim', v['head-dim'], DEFAULT_MATRIX.headDim),
    pageSize: integers('page-size', v['page-size'], DEFAULT_MATRIX.pageSize),
    group: integers('group', v.group, DEFAULT_MATRIX.group),
    dtype: choices<DType>('dtype', v.dtype, DTYPES, DEFAULT_MATRIX.dtype),
    digest: choices<DigestVariant>('digest', v.digest, DIGEST_VARIANTS, DEFAULT_MATRIX.digest),
  };
  return {
    outDir: v.out ?? 'generated',
    matrix,
    families: list(v.kernel),
    merge: v.merge ?? false,
    check: v.check ?? false,
    list: v.list ?? false,
    quiet: v.quiet ?? false,
    help: v.help ?? false,
    version: v.version ?? false,
  };
}
