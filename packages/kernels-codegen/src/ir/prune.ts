/**
 * Removes variables that folding left unread (`float norm = 0.0f;` in a spec whose
 * branch never uses it): nvcc rejects them with -Werror all-warnings, and readers do
 * not want them. Declarations and assignments of such variables go; their values go
 * too when they have no side effects, else they stay as expression statements.
 */
import type { Expr, IntrinsicName, Stmt } from './nodes.js';

const PURE_CALLS = new Set<IntrinsicName>([
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'abs',
  'max',
  'min',
  'floor',
  'ceil',
  'tanh',
  'sin',
  'cos',
  'pow',
  'exp2',
  'exp2Ftz',
  'log2',
  'fma',
  'floatBits',
  'bitsToFloat',
  'popc',
]);

function pure(e: Expr): boolean {
  switch (e.k) {
    case 'lit':
    case 'var':
    case 'builtin':
      return true;
    case 'unary':
    case 'convert':
      return pure(e.e);
    case 'binary':
      return pure(e.a) && pure(e.b);
    case 'cond':
      return pure(e.c) && pure(e.a) && pure(e.b);
    case 'index':
      return pure(e.base) && pure(e.i);
    case 'offset':
      return pure(e.base) && pure(e.n);
    case 'call':
      return PURE_CALLS.has(e.fn) && e.args.every(pure);
    case 'helper':
      return false;
  }
}

function countReads(e: Expr | undefined, reads: Map<string, number>): void {
  if (!e) return;
  switch (e.k) {
    case 'var':
      reads.set(e.name, (reads.get(e.name) ?? 0) + 1);
      return;
    case 'unary':
    case 'convert':
      return countReads(e.e, reads);
    case 'binary':
      countReads(e.a, reads);
      return countReads(e.b, reads);
    case 'cond':
      countReads(e.c, reads);
      countReads(e.a, reads);
      return countReads(e.b, reads);
    case 'index':
      countReads(e.base, reads);
      return countReads(e.i, reads);
    case 'offset':
      countReads(e.base, reads);
      return countReads(e.n, reads);
    case 'call':
    case 'helper':
      for (const a of e.args) countReads(a, reads);
      return;
    default:
      return;
  }
}

function countStmts(stmts: readonly Stmt[], reads: Map<string, number>): void {
  for (const s of stmts) {
    switch (s.k) {
      case 'decl':
        countReads(s.init, reads);
        break;
      case 'assign':
        // Writing a variable (even `x += y`) is not a use of it; writing an element is.
        if (s.target.k !== 'var') countReads(s.target, reads);
        countReads(s.value, reads);
        break;
      case 'expr':
        countReads(s.e, reads);
        break;
      case 'return':
        countReads(s.e, reads);
        break;
      case 'if':
        countReads(s.c, reads);
        countStmts(s.then, reads);
        countStmts(s.else ?? [], reads);
        break;
      case 'for':
        countStmts(
          [s.init, s.update].filter((x): x is Stmt => !!x),
          reads,
        );
        countReads(s.c, reads);
        countStmts(s.body, reads);
        break;
      case 'while':
      case 'dowhile':
        countReads(s.c, reads);
        countStmts(s.body, reads);
        break;
      case 'block':
        countStmts(s.body, reads);
        break;
      case 'array':
        // Arrays are referenced by name; a declared array counts as used.
        reads.set(s.name, (reads.get(s.name) ?? 0) + 1);
        break;
      default:
        break;
    }
  }
}

function dropUnread(stmts: readonly Stmt[], reads: ReadonlyMap<string, number>): Stmt[] {
  const unread = (name: string) => !reads.get(name);
  const out: Stmt[] = [];
  for (const s of stmts) {
    switch (s.k) {
      case 'decl':
        if (unread(s.name)) {
          if (s.init && !pure(s.init)) out.push({ k: 'expr', e: s.init });
        } else out.push(s);
        break;
      case 'assign':
        if (s.target.k === 'var' && unread(s.target.name)) {
          if (!pure(s.value)) out.push({ k: 'expr', e: s.value });
        } else out.push(s);
        break;
      case 'if':
        out.push({ ...s, then: dropUnread(s.then, reads), else: s.else ? dropUnread(s.else, reads) : undefined });
        break;
      case 'for': {
        // The loop variable is read by the condition, so init and update survive.
        out.push({ ...s, body: dropUnread(s.body, reads) });
        break;
      }
      case 'while':
      case 'dowhile':
        out.push({ ...s, body: dropUnread(s.body, reads) });
        break;
      case 'block':
        out.push({ ...s, body: dropUnread(s.body, reads) });
        break;
      default:
        out.push(s);
    }
  }
  return out;
}

export function pruneUnused(body: readonly Stmt[], params: readonly string[] = []): Stmt[] {
  let current = [...body];
  for (;;) {
    const reads = new Map<string, number>(params.map((p) => [p, 1]));
    countStmts(current, reads);
    const next = dropUnread(current, reads);
    if (JSON.stringify(next) === JSON.stringify(current)) return next;
    current = next;
  }
}
