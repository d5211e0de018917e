/** Which calls suspend a thread in the emulator (block barriers and warp collectives). */
import type { Expr, HelperFn, IntrinsicName, Stmt } from '../../ir/nodes.js';

const YIELDING = new Set<IntrinsicName>([
  'syncthreads',
  'syncwarp',
  'shflXor',
  'shflDown',
  'shflUp',
  'shflIdx',
  'ballot',
  'warpAny',
  'warpAll',
  'ldmatrixX4',
  'ldmatrixX4Trans',
  'mmaM16N8K16',
]);

export const isYieldingIntrinsic = (fn: IntrinsicName): boolean => YIELDING.has(fn);

function exprYields(e: Expr | undefined, yielding: ReadonlySet<string>): boolean {
  if (!e) return false;
  switch (e.k) {
    case 'call':
      return YIELDING.has(e.fn) || e.args.some((a) => exprYields(a, yielding));
    case 'helper':
      return yielding.has(e.name) || e.args.some((a) => exprYields(a, yielding));
    case 'unary':
      return exprYields(e.e, yielding);
    case 'convert':
      return exprYields(e.e, yielding);
    case 'binary':
      return exprYields(e.a, yielding) || exprYields(e.b, yielding);
    case 'cond':
      return exprYields(e.c, yielding) || exprYields(e.a, yielding) || exprYields(e.b, yielding);
    case 'index':
      return exprYields(e.base, yielding) || exprYields(e.i, yielding);
    case 'offset':
      return exprYields(e.base, yielding) || exprYields(e.n, yielding);
    default:
      return false;
  }
}

function stmtsYield(stmts: readonly Stmt[], yielding: ReadonlySet<string>): boolean {
  return stmts.some((s) => {
    switch (s.k) {
      case 'decl':
        return exprYields(s.init, yielding);
      case 'assign':
        return exprYields(s.target, yielding) || exprYields(s.value, yielding);
      case 'expr':
        return exprYields(s.e, yielding);
      case 'return':
        return exprYields(s.e, yielding);
      case 'if':
        return exprYields(s.c, yielding) || stmtsYield(s.then, yielding) || stmtsYield(s.else ?? [], yielding);
      case 'for':
        return (
          stmtsYield(
            [s.init, s.update].filter((x): x is Stmt => !!x),
            yielding,
          ) ||
          exprYields(s.c, yielding) ||
          stmtsYield(s.body, yielding)
        );
      case 'while':
      case 'dowhile':
        return exprYields(s.c, yielding) || stmtsYield(s.body, yielding);
      case 'block':
        return stmtsYield(s.body, yielding);
      default:
        return false;
    }
  });
}

/** Names of helpers that suspend (helpers come callees first). */
export function yieldingHelpers(helpers: readonly HelperFn[]): Set<string> {
  const out = new Set<string>();
  for (const h of helpers) if (stmtsYield(h.body, out)) out.add(h.name);
  return out;
}
