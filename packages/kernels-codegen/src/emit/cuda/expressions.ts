/** IR expressions -> CUDA C++ with the parentheses C++ precedence needs (and a few for clarity). */
import type { BinaryOp, Expr } from '../../ir/nodes.js';
import type { ScalarName } from '../../ir/types.js';
import { typeOf } from '../../translate/coerce.js';
import { cudaScalar } from './types.js';

interface Printed {
  readonly text: string;
  readonly prec: number;
}

const PRIMARY = 16;
const UNARY = 15;
const PREC: Record<BinaryOp, number> = {
  '*': 13,
  '/': 13,
  '%': 13,
  '+': 12,
  '-': 12,
  '<<': 11,
  '>>': 11,
  '>>>': 11,
  '<': 10,
  '<=': 10,
  '>': 10,
  '>=': 10,
  '===': 9,
  '!==': 9,
  '&': 8,
  '^': 7,
  '|': 6,
  '&&': 5,
  '||': 4,
};
const COND = 3;
/** Operators whose operands get parentheses whenever they are other binary operations (readability, -Wparentheses). */
const CLARIFY = new Set<BinaryOp>(['&', '^', '|', '<<', '>>', '>>>', '||']);

export function printExpr(e: Expr): string {
  return print(e).text;
}

function wrap(p: Printed, min: number): string {
  return p.prec < min ? `(${p.text})` : p.text;
}

export function literal(t: ScalarName, v: number | boolean): Printed {
  if (typeof v === 'boolean') return { text: v ? 'true' : 'false', prec: PRIMARY };
  switch (t) {
    case 'f32':
      if (v === Infinity) return { text: 'ARKVALE_INF', prec: PRIMARY };
      if (v === -Infinity) return { text: '-ARKVALE_INF', prec: UNARY };
      return { text: floatLiteral(v), prec: v < 0 || Object.is(v, -0) ? UNARY : PRIMARY };
    case 'u32':
      return { text: `${v}u`, prec: PRIMARY };
    case 'i64':
      return { text: `${v}ll`, prec: v < 0 ? UNARY : PRIMARY };
    case 'i32':
      if (v === -(2 ** 31)) return { text: '(-2147483647 - 1)', prec: PRIMARY };
      return { text: String(v), prec: v < 0 ? UNARY : PRIMARY };
    case 'f16':
      return { text: `__float2half_rn(${literal('f32', v).text})`, prec: PRIMARY };
    case 'bf16':
      return { text: `__float2bfloat16_rn(${literal('f32', v).text})`, prec: PRIMARY };
    case 'u8':
      return { text: `(unsigned char)${v}`, prec: UNARY };
    default:
      throw new Error(`no ${t} literals in CUDA output`);
  }
}

/** The shortest decimal that rounds to the same f32, with an `f` suffix. */
export function floatLiteral(v: number): string {
  if (Object.is(v, -0)) return '-0.0f';
  let s = '';
  for (let p = 1; p <= 9; p++) {
    s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) break;
  }
  s = String(Number(s));
  if (!/[.e]/.test(s)) s += '.0';
  return `${s}f`;
}

function conversion(to: ScalarName, e: Expr): Printed {
  const from = typeOf(e);
  const inner = print(e);
  if (from.kind === 'scalar') {
    if (to === 'f16' && from.name === 'f32') return { text: `__float2half_rn(${inner.text})`, prec: PRIMARY };
    if (to === 'bf16' && from.name === 'f32') return { text: `__float2bfloat16_rn(${inner.text})`, prec: PRIMARY };
    if (to === 'f32' && from.name === 'f16') return { text: `__half2float(${inner.text})`, prec: PRIMARY };
    if (to === 'f32' && from.name === 'bf16') return { text: `__bfloat162float(${inner.text})`, prec: PRIMARY };
  }
  return { text: `(${cudaScalar(to)})${wrap(inner, UNARY)}`, prec: UNARY };
}

function binary(op: BinaryOp, a: Expr, b: Expr, t: ScalarName): Printed {
  const p = PREC[op];
  const pa = print(a);
  const pb = print(b);
  const clarify = CLARIFY.has(op);
  const side = (x: Printed, e: Expr, min: number) => (clarify && e.k === 'binary' && e.op !== op ? `(${x.text})` : wrap(x, min));
  if (op === '>>>') {
    // C has no logical shift of signed values: shift the unsigned reinterpretation.
    const unsigned = t === 'i64' ? 'unsigned long long' : 'unsigned int';
    const shifted = `(${unsigned})${wrap(pa, UNARY)} >> ${wrap(pb, p + 1)}`;
    return t === 'u32' ? { text: `${wrap(pa, p)} >> ${wrap(pb, p + 1)}`, prec: p } : { text: `(${cudaScalar(t)})(${shifted})`, prec: UNARY };
  }
  const cop = op === '===' ? '==' : op === '!==' ? '!=' : op;
  return { text: `${side(pa, a, p)} ${cop} ${side(pb, b, p + 1)}`, prec: p };
}

const MATH_F32: Record<string, string> = {
  exp: 'expf',
  log: 'logf',
  sqrt: 'sqrtf',
  rsqrt: 'rsqrtf',
  abs: 'fabsf',
  max: 'fmaxf',
  min: 'fminf',
  floor: 'floorf',
  ceil: 'ceilf',
  tanh: 'tanhf',
  sin: 'sinf',
  cos: 'cosf',
  pow: 'powf',
  exp2: 'exp2f',
  exp2Ftz: 'arkvale::exp2_ftz',
  log2: 'log2f',
  fma: 'fmaf',
};
const MATH_INT: Record<string, Partial<Record<ScalarName, string>>> = {
  abs: { i32: 'abs', i64: 'llabs' },
  max: { i32: 'max', u32: 'umax', i64: 'llmax' },
  min: { i32: 'min', u32: 'umin', i64: 'llmin' },
};

function call(e: Extract<Expr, { k: 'call' }>): Printed {
  const args = e.args.map((a) => print(a).text);
  const fn = (name: string, xs: readonly string[] = args): Printed => ({ text: `${name}(${xs.join(', ')})`, prec: PRIMARY });
  const addr = (base: Expr, i: Expr): string => pointerPlus(base, i);
  const t = e.t.kind === 'scalar' ? e.t.name : undefined;
  switch (e.fn) {
    case 'abs':
    case 'max':
    case 'min':
      return fn(t === 'f32' ? MATH_F32[e.fn] : MATH_INT[e.fn][t!]!);
    case 'floatBits':
      return fn('__float_as_uint');
    case 'bitsToFloat':
      return fn('__uint_as_float');
    case 'popc':
      return fn('__popc');
    case 'encodeE4m3':
      return fn('arkvale::e4m3_encode');
    case 'decodeE4m3':
      return fn('arkvale::e4m3_decode');
    case 'syncthreads':
      return fn('__syncthreads');
    case 'syncwarp':
      return fn('__syncwarp');
    case 'threadfence':
      return fn('__threadfence');
    case 'shflXor':
    case 'shflDown':
    case 'shflUp':
    case 'shflIdx': {
      const name = { shflXor: '__shfl_xor_sync', shflDown: '__shfl_down_sync', shflUp: '__shfl_up_sync', shflIdx: '__shfl_sync' }[e.fn];
      const width = e.args[2];
      const rest = width.k === 'lit' && width.v === 32 ? args.slice(0, 2) : args;
      return fn(name, ['0xffffffffu', ...rest]);
    }
    case 'ballot':
      return fn('__ballot_sync', ['0xffffffffu', args[0]]);
    case 'warpAny':
      return fn('__any_sync', ['0xffffffffu', args[0]]);
    case 'warpAll':
      return fn('__all_sync', ['0xffffffffu', args[0]]);
    case 'atomicAdd':
    case 'atomicMax':
    case 'atomicMin':
    case 'atomicExch':
    case 'atomicCAS':
      return fn(e.fn, [`&${wrap(print({ k: 'index', base: e.args[0], i: e.args[1], t: t!, loc: e.loc }), UNARY)}`, ...args.slice(2)]);
    case 'ldcg':
      return fn('__ldcg', [addr(e.args[0], e.args[1])]);
    case 'vload':
      return fn('arkvale::vload', [args[0], addr(e.args[1], e.args[2])]);
    case 'vstore':
      return fn('arkvale::vstore', [addr(e.args[0], e.args[1]), args[2]]);
    case 'cpAsync16':
      return fn('arkvale::cp_async_16', [addr(e.args[0], e.args[1]), addr(e.args[2], e.args[3])]);
    case 'cpAsync8':
      return fn('arkvale::cp_async_8', [addr(e.args[0], e.args[1]), addr(e.args[2], e.args[3])]);
    case 'cpAsync4':
      return fn('arkvale::cp_async_4', [addr(e.args[0], e.args[1]), addr(e.args[2], e.args[3])]);
    case 'cpAsyncCommit':
      return fn('arkvale::cp_async_commit');
    case 'cpAsyncWait':
      return fn(`arkvale::cp_async_wait<${args[0]}>`, []);
    case 'ldmatrixX4':
      return fn('arkvale::ldmatrix_x4', [args[0], addr(e.args[1], e.args[2])]);
    case 'ldmatrixX4Trans':
      return fn('arkvale::ldmatrix_x4_trans', [args[0], addr(e.args[1], e.args[2])]);
    case 'mmaM16N8K16':
      return fn('arkvale::mma_m16n8k16');
    default:
      return fn(MATH_F32[e.fn]);
  }
}

/** `p + i`, or just `p` when i is the constant 0. */
function pointerPlus(base: Expr, i: Expr): string {
  const pb = print(base);
  if (i.k === 'lit' && i.v === 0) return pb.text;
  return `${wrap(pb, 12)} + ${wrap(print(i), 13)}`;
}

function print(e: Expr): Printed {
  switch (e.k) {
    case 'lit':
      return literal(e.t, e.v);
    case 'var':
      return { text: e.name, prec: PRIMARY };
    case 'builtin':
      return { text: `(int)${e.name}`, prec: UNARY };
    case 'unary': {
      const inner = wrap(print(e.e), UNARY);
      // Never print `--x` or `~~x` run together: `--` is a decrement in C.
      return { text: `${e.op}${/^[-+~!]/.test(inner) ? `(${inner})` : inner}`, prec: UNARY };
    }
    case 'binary':
      return binary(e.op, e.a, e.b, e.op === '>>>' ? e.t : e.ot);
    case 'cond':
      return { text: `${wrap(print(e.c), COND + 1)} ? ${wrap(print(e.a), COND + 1)} : ${wrap(print(e.b), COND)}`, prec: COND };
    case 'index':
      return { text: `${wrap(print(e.base), PRIMARY)}[${print(e.i).text}]`, prec: PRIMARY };
    case 'convert':
      return conversion(e.to, e.e);
    case 'offset':
      return { text: pointerPlus(e.base, e.n), prec: 12 };
    case 'call':
      return call(e);
    case 'helper':
      return { text: `${e.name}(${e.args.map((a) => print(a).text).join(', ')})`, prec: PRIMARY };
  }
}
