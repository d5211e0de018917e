/**
 * IR -> JavaScript for the emulator. Every thread runs the kernel as a generator that
 * yields at barriers and warp collectives; scalar semantics (f32 rounding, i32/u32
 * wrapping, truncating division, f16/bf16 rounding) are those of the CUDA output.
 */
import type { BinaryOp, Expr, HelperFn, KernelIR, SourceLoc, Stmt } from '../../ir/nodes.js';
import type { ScalarName } from '../../ir/types.js';
import { typeOf } from '../../translate/coerce.js';
import { isYieldingIntrinsic, yieldingHelpers } from './yields.js';

class JsPrinter {
  readonly locs: SourceLoc[] = [];
  private readonly locIds = new Map<SourceLoc, number>();
  constructor(private readonly yielding: ReadonlySet<string>) {}

  loc(l: SourceLoc): number {
    let id = this.locIds.get(l);
    if (id === undefined) {
      id = this.locs.length;
      this.locs.push(l);
      this.locIds.set(l, id);
    }
    return id;
  }

  expr(e: Expr): string {
    switch (e.k) {
      case 'lit':
        return typeof e.v === 'boolean' ? String(e.v) : Object.is(e.v, -0) ? '-0' : `(${String(e.v)})`;
      case 'var':
        return e.name;
      case 'builtin':
        return `$T.${e.name.replace('.', '_')}`;
      case 'unary':
        return this.unary(e.op, e.t, this.expr(e.e));
      case 'binary':
        return this.binary(e.op, e.t, this.expr(e.a), this.expr(e.b));
      case 'cond':
        return `(${this.expr(e.c)} ? ${this.expr(e.a)} : ${this.expr(e.b)})`;
      case 'index':
        return `$R.ld_${e.t}(${this.expr(e.base)}, ${this.expr(e.i)}, $T, ${this.loc(e.loc)})`;
      case 'convert':
        return this.convert(this.scalar(e.e), e.to, this.expr(e.e));
      case 'offset':
        return `$R.off(${this.expr(e.base)}, ${this.expr(e.n)})`;
      case 'helper': {
        const call = `${e.name}($T, ${e.args.map((a) => this.expr(a)).join(', ')})`;
        return this.yielding.has(e.name) ? `(yield* ${call})` : call;
      }
      case 'call':
        return this.call(e);
    }
  }

  private scalar(e: Expr): ScalarName {
    const t = typeOf(e);
    return t.kind === 'scalar' ? t.name : 'i32';
  }

  unary(op: '-' | '!' | '~', t: ScalarName, a: string): string {
    if (op === '!') return `(!${a})`;
    if (op === '-') return t === 'i32' ? `((-${a}) | 0)` : `(-${a})`;
    if (t === 'u32') return `((~${a}) >>> 0)`;
    if (t === 'i64') return `$R.not64(${a})`;
    return `(~${a})`;
  }

  /** `t` is the result type (comparisons and logic print the same for every operand type). */
  binary(op: BinaryOp, t: ScalarName, a: string, b: string): string {
    switch (op) {
      case '<':
      case '<=':
      case '>':
      case '>=':
      case '===':
      case '!==':
      case '&&':
      case '||':
        return `(${a} ${op} ${b})`;
    }
    if (t === 'f32') return `$F(${a} ${op} ${b})`;
    if (t === 'i32') {
      switch (op) {
        case '*':
          return `Math.imul(${a}, ${b})`;
        case '/':
          return `$R.idiv(${a}, ${b}, $T)`;
        case '%':
          return `$R.imod(${a}, ${b}, $T)`;
        case '>>>':
          return `((${a} >>> ${b}) | 0)`;
        default:
          return `((${a} ${op} ${b}) | 0)`;
      }
    }
    if (t === 'u32') {
      switch (op) {
        case '*':
          return `(Math.imul(${a}, ${b}) >>> 0)`;
        case '/':
          return `$R.udiv(${a}, ${b}, $T)`;
        case '%':
          return `$R.umod(${a}, ${b}, $T)`;
        case '>>':
        case '>>>':
          return `(${a} >>> ${b})`;
        default:
          return `((${a} ${op} ${b}) >>> 0)`;
      }
    }
    // i64: exact in doubles for the magnitudes kernels index with; bit operations go through BigInt.
    switch (op) {
      case '+':
      case '-':
        return `(${a} ${op} ${b})`;
      case '*':
        return `Math.trunc(${a} * ${b})`;
      case '/':
        return `$R.ldiv(${a}, ${b}, $T)`;
      case '%':
        return `$R.lmod(${a}, ${b}, $T)`;
      default:
        return `$R.op64(${JSON.stringify(op)}, ${a}, ${b})`;
    }
  }

  convert(from: ScalarName, to: ScalarName, a: string): string {
    if (from === to) return a;
    if (from === 'bool') return `(${a} ? 1 : 0)`;
    switch (to) {
      case 'f32':
        return from === 'f16' || from === 'bf16' || from === 'u8' ? a : `$F(${a})`;
      case 'f16':
        return `$R.roundHalf(${a})`;
      case 'bf16':
        return `$R.roundBf16(${a})`;
      case 'i32':
        return from === 'f32' || from === 'f16' || from === 'bf16' ? `$R.f2i(${a})` : from === 'u8' ? a : `(${a} | 0)`;
      case 'u32':
        return from === 'f32' || from === 'f16' || from === 'bf16' ? `$R.f2u(${a})` : from === 'u8' ? a : `(${a} >>> 0)`;
      case 'i64':
        return from === 'f32' ? `$R.f2l(${a})` : a;
      case 'u8':
        return `(${a} & 255)`;
      case 'bool':
        return `(${a} !== 0)`;
    }
  }

  private call(e: Extract<Expr, { k: 'call' }>): string {
    const a = e.args.map((x) => this.expr(x));
    const L = this.loc(e.loc);
    const t = e.t.kind === 'scalar' ? e.t.name : undefined;
    const y = (s: string) => (isYieldingIntrinsic(e.fn) ? `(yield ${s})` : s);
    switch (e.fn) {
      case 'exp':
      case 'log':
      case 'sqrt':
      case 'floor':
      case 'ceil':
      case 'tanh':
      case 'sin':
      case 'cos':
      case 'log2':
        return `$F(Math.${e.fn}(${a[0]}))`;
      case 'pow':
        return `$F(Math.pow(${a[0]}, ${a[1]}))`;
      case 'exp2':
        return `$F(Math.pow(2, ${a[0]}))`;
      case 'exp2Ftz':
        return `(${a[0]} < -126 ? 0 : $F(Math.pow(2, ${a[0]})))`;
      case 'rsqrt':
        return `$F(1 / Math.sqrt(${a[0]}))`;
      case 'fma':
        return `$F(${a[0]} * ${a[1]} + ${a[2]})`;
      case 'abs':
        return t === 'i32' ? `(Math.abs(${a[0]}) | 0)` : `Math.abs(${a[0]})`;
      case 'max':
      case 'min':
        return t === 'f32' ? `$R.f${e.fn}(${a[0]}, ${a[1]})` : `Math.${e.fn}(${a[0]}, ${a[1]})`;
      case 'floatBits':
        return `$R.floatBits(${a[0]})`;
      case 'bitsToFloat':
        return `$R.bitsToFloat(${a[0]})`;
      case 'popc':
        return `$R.popc(${a[0]})`;
      case 'encodeE4m3':
        return `$R.encodeE4m3(${a[0]})`;
      case 'decodeE4m3':
        return `$R.decodeE4m3(${a[0]})`;
      case 'syncthreads':
        return y(`$R.barrier(${L})`);
      case 'syncwarp':
        return y(`$R.syncwarp(${L})`);
      case 'ldcg':
        // A plain load (with its race check): the emulator has no caches.
        return `$R.ld_${e.t.kind === 'scalar' ? e.t.name : 'f32'}(${a[0]}, ${a[1]}, $T, ${L})`;
      case 'threadfence':
        // The emulator runs a grid's blocks one after another: every write is already seen.
        return 'undefined';
      case 'shflXor':
      case 'shflDown':
      case 'shflUp':
      case 'shflIdx':
        return y(`$R.shuffle(${JSON.stringify(e.fn)}, ${a.join(', ')}, ${L})`);
      case 'ballot':
      case 'warpAny':
      case 'warpAll':
        return y(`$R.vote(${JSON.stringify(e.fn)}, ${a[0]}, ${L})`);
      case 'atomicAdd':
      case 'atomicMax':
      case 'atomicMin':
      case 'atomicExch':
      case 'atomicCAS':
        return `$R.${e.fn}(${a.join(', ')}, $T, ${L})`;
      case 'vload':
      case 'vstore':
      case 'cpAsync16':
      case 'cpAsync8':
      case 'cpAsync4':
        return `$R.${e.fn}(${a.join(', ')}, $T, ${L})`;
      case 'cpAsyncCommit':
      case 'cpAsyncWait':
        return 'undefined';
      case 'ldmatrixX4':
      case 'ldmatrixX4Trans':
      case 'mmaM16N8K16':
        return y(`$R.${e.fn}(${a.join(', ')}, ${L})`);
    }
  }

  stmts(stmts: readonly Stmt[], ind: string): string[] {
    return stmts.flatMap((s) => this.stmt(s, ind));
  }

  private simple(s: Stmt): string {
    switch (s.k) {
      case 'decl': {
        const init = s.init ? this.expr(s.init) : s.t.kind === 'scalar' ? `$R.garbage(${JSON.stringify(s.t.name)})` : 'undefined';
        return `${s.isConst ? 'const' : 'let'} ${s.name} = ${init}`;
      }
      case 'assign':
        return this.assign(s);
      case 'expr':
        return this.expr(s.e);
      default:
        throw new Error(`not a simple statement: ${s.k}`);
    }
  }

  private assign(s: Extract<Stmt, { k: 'assign' }>): string {
    const target = s.target;
    const t = this.scalar(target);
    const L = this.loc(s.loc);
    if (target.k === 'var') {
      if (s.op === '=') return `${target.name} = ${this.expr(s.value)}`;
      return `${target.name} = ${this.binary(s.op.slice(0, -1) as BinaryOp, t, target.name, this.expr(s.value))}`;
    }
    if (target.k !== 'index') throw new Error('assignment target');
    const base = this.expr(target.base);
    const idx = this.expr(target.i);
    if (s.op === '=') return `$R.st_${t}(${base}, ${idx}, ${this.expr(s.value)}, $T, ${L})`;
    const cur = `$R.ld_${t}($p, $i, $T, ${L})`;
    const v = this.binary(s.op.slice(0, -1) as BinaryOp, t, cur, this.expr(s.value));
    return `{ const $p = ${base}, $i = ${idx}; $R.st_${t}($p, $i, ${v}, $T, ${L}); }`;
  }

  private stmt(s: Stmt, ind: string): string[] {
    const inner = `${ind}  `;
    switch (s.k) {
      case 'comment':
        return [];
      case 'decl':
      case 'assign':
      case 'expr':
        return [`${ind}${this.simple(s)};`];
      case 'array':
        return s.t.space === 'shared'
          ? [`${ind}const ${s.name} = $S.${s.name};`]
          : [`${ind}const ${s.name} = $R.local(${JSON.stringify(s.t.elem)}, ${s.t.length}, ${JSON.stringify(s.name)});`];
      case 'if':
        return [`${ind}if (${this.expr(s.c)}) {`, ...this.stmts(s.then, inner), ...(s.else ? [`${ind}} else {`, ...this.stmts(s.else, inner)] : []), `${ind}}`];
      case 'for':
        return [
          `${ind}for (${s.init ? this.simple(s.init) : ''}; ${s.c ? this.expr(s.c) : ''}; ${s.update ? this.simple(s.update) : ''}) {`,
          ...this.stmts(s.body, inner),
          `${ind}}`,
        ];
      case 'while':
        return [`${ind}while (${this.expr(s.c)}) {`, ...this.stmts(s.body, inner), `${ind}}`];
      case 'dowhile':
        return [`${ind}do {`, ...this.stmts(s.body, inner), `${ind}} while (${this.expr(s.c)});`];
      case 'break':
        return [`${ind}break;`];
      case 'continue':
        return [`${ind}continue;`];
      case 'return':
        return [`${ind}return${s.e ? ` ${this.expr(s.e)}` : ''};`];
      case 'block':
        return [`${ind}{`, ...this.stmts(s.body, inner), `${ind}}`];
    }
  }

  helper(h: HelperFn): string[] {
    const star = this.yielding.has(h.name) ? '*' : '';
    return [`function${star} ${h.name}($T, ${h.params.map((p) => p.name).join(', ')}) {`, ...this.stmts(h.body, '  '), '}'];
  }
}

function sharedArrays(stmts: readonly Stmt[]): Extract<Stmt, { k: 'array' }>[] {
  return stmts.filter((s): s is Extract<Stmt, { k: 'array' }> => s.k === 'array' && s.t.space === 'shared');
}

export interface KernelJs {
  /** Body of `new Function('$R', body)`; returns { kernel, shared }. */
  readonly body: string;
  readonly locs: readonly SourceLoc[];
}

export function printKernelJs(k: KernelIR): KernelJs {
  const p = new JsPrinter(yieldingHelpers(k.helpers));
  const helpers = k.helpers.flatMap((h) => p.helper(h));
  const body = p.stmts(k.body, '  ');
  const shared = sharedArrays(k.body).map((s) => `${s.name}: $R.shared(${JSON.stringify(s.t.elem)}, ${s.t.length}, ${JSON.stringify(s.name)})`);
  const lines = [
    '"use strict";',
    'const $F = Math.fround;',
    ...helpers,
    `function* kernel($T, $S, ${k.params.map((q) => q.name).join(', ')}) {`,
    ...body,
    '}',
    `function shared() { return { ${shared.join(', ')} }; }`,
    'return { kernel, shared };',
  ];
  return { body: lines.join('\n'), locs: p.locs };
}
