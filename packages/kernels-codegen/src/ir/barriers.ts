/** Whether statements wait at a block barrier (directly or in a helper they call). */
import type { Expr, HelperFn, Stmt } from './nodes.js';

function exprBarrier(e: Expr | undefined, helpers: ReadonlyMap<string, HelperFn>): boolean {
  if (!e) return false;
  switch (e.k) {
    case 'call':
      return e.fn === 'syncthreads' || e.args.some((a) => exprBarrier(a, helpers));
    case 'helper': {
      const h = helpers.get(e.name);
      return (h !== undefined && hasBarrier(h.body, helpers)) || e.args.some((a) => exprBarrier(a, helpers));
    }
    case 'unary':
    case 'convert':
      return exprBarrier(e.e, helpers);
    case 'binary':
      return exprBarrier(e.a, helpers) || exprBarrier(e.b, helpers);
    case 'cond':
      return exprBarrier(e.c, helpers) || exprBarrier(e.a, helpers) || exprBarrier(e.b, helpers);
    case 'index':
      return exprBarrier(e.base, helpers) || exprBarrier(e.i, helpers);
    default:
      return false;
  }
}

export function hasBarrier(stmts: readonly Stmt[], helpers: ReadonlyMap<string, HelperFn>): boolean {
  return stmts.some((s) => {
    switch (s.k) {
      case 'decl':
        return exprBarrier(s.init, helpers);
      case 'assign':
        return exprBarrier(s.value, helpers);
      case 'expr':
      case 'return':
        return exprBarrier(s.k === 'expr' ? s.e : s.e, helpers);
      case 'if':
        return exprBarrier(s.c, helpers) || hasBarrier(s.then, helpers) || hasBarrier(s.else ?? [], helpers);
      case 'for':
      case 'while':
      case 'dowhile':
      case 'block':
        return hasBarrier(s.body, helpers);
      default:
        return false;
    }
  });
}
