/** IR statements -> CUDA C++ lines. */
import type { Stmt } from '../../ir/nodes.js';
import { sizeOf } from '../../ir/types.js';
import { printExpr } from './expressions.js';
import { cudaScalar, cudaType } from './types.js';

/** The kernel's dynamic shared memory, which arrays with a dynamicOffset point into. */
export const DYNAMIC_SHARED = 'arkvale_dynamic_shared';

export function printBlock(stmts: readonly Stmt[], indent: string): string[] {
  return stmts.flatMap((s) => printStmt(s, indent));
}

/** Alignment that lets the array be moved with 4/8/16-byte accesses. */
function arrayAlign(bytes: number): number {
  let a = 16;
  while (a > 1 && bytes % a !== 0) a /= 2;
  return a;
}

function simple(s: Stmt): string {
  switch (s.k) {
    case 'decl': {
      const q = s.isConst && s.t.kind === 'scalar' ? 'const ' : '';
      return `${q}${cudaType(s.t)} ${s.name}${s.init ? ` = ${printExpr(s.init)}` : ''}`;
    }
    case 'assign': {
      const target = printExpr(s.target);
      if ((s.op === '+=' || s.op === '-=') && s.value.k === 'lit' && s.value.v === 1 && s.target.k === 'var') {
        return `${s.op === '+=' ? '++' : '--'}${target}`;
      }
      if (s.op === '>>>=') {
        const t = s.target.k === 'var' && s.target.t.kind === 'scalar' ? s.target.t.name : s.target.k === 'index' ? s.target.t : 'i32';
        if (t !== 'u32') {
          const u = t === 'i64' ? 'unsigned long long' : 'unsigned int';
          return `${target} = (${cudaScalar(t)})((${u})${target} >> ${printExpr(s.value)})`;
        }
        return `${target} >>= ${printExpr(s.value)}`;
      }
      return `${target} ${s.op} ${printExpr(s.value)}`;
    }
    case 'expr':
      return printExpr(s.e);
    default:
      throw new Error(`not a simple statement: ${s.k}`);
  }
}

function printStmt(s: Stmt, ind: string): string[] {
  const inner = `${ind}  `;
  switch (s.k) {
    case 'comment':
      return [`${ind}//${s.text ? ` ${s.text}` : ''}`];
    case 'decl':
    case 'assign':
    case 'expr':
      return [`${ind}${simple(s)};`];
    case 'array': {
      if (s.dynamicOffset !== undefined) {
        const elem = cudaScalar(s.t.elem);
        return [`${ind}${elem}* const ${s.name} = reinterpret_cast<${elem}*>(${DYNAMIC_SHARED} + ${s.dynamicOffset});`];
      }
      const bytes = s.t.length * sizeOf(s.t.elem);
      const align = arrayAlign(bytes);
      const prefix = s.t.space === 'shared' ? '__shared__ ' : '';
      const alignment = align >= 4 ? `__align__(${align}) ` : '';
      return [`${ind}${prefix}${alignment}${cudaScalar(s.t.elem)} ${s.name}[${s.t.length}];`];
    }
    case 'if': {
      const out = [`${ind}if (${printExpr(s.c)}) {`, ...printBlock(s.then, inner)];
      if (s.else && s.else.length === 1 && s.else[0].k === 'if') {
        const [first, ...rest] = printStmt(s.else[0], ind);
        return [...out, `${ind}} else ${first.trimStart()}`, ...rest];
      }
      if (s.else) return [...out, `${ind}} else {`, ...printBlock(s.else, inner), `${ind}}`];
      return [...out, `${ind}}`];
    }
    case 'for': {
      const head = `for (${s.init ? simple(s.init) : ''}; ${s.c ? printExpr(s.c) : ''}; ${s.update ? simple(s.update) : ''})`;
      return [...(s.unroll ? [`${ind}#pragma unroll`] : []), `${ind}${head} {`, ...printBlock(s.body, inner), `${ind}}`];
    }
    case 'while':
      return [`${ind}while (${printExpr(s.c)}) {`, ...printBlock(s.body, inner), `${ind}}`];
    case 'dowhile':
      return [`${ind}do {`, ...printBlock(s.body, inner), `${ind}} while (${printExpr(s.c)});`];
    case 'break':
      return [`${ind}break;`];
    case 'continue':
      return [`${ind}continue;`];
    case 'return':
      return [`${ind}return${s.e ? ` ${printExpr(s.e)}` : ''};`];
    case 'block':
      return [`${ind}{`, ...printBlock(s.body, inner), `${ind}}`];
  }
}
