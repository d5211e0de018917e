/** DSL intrinsics: argument checking and typing. Printing is the emitters' job. */
import type { CallExpression, Node } from 'ts-morph';
import type { Expr, IntrinsicName } from '../ir/nodes.js';
import { describeType, isInteger, sizeOf, VOID, type DslType, type ScalarName } from '../ir/types.js';
import { isConst } from './build.js';
import { coerce, scalarOf, typeOf } from './coerce.js';
import type { FnContext } from './context.js';
import { dslError, locOf } from './errors.js';
import { translateExpr } from './expressions.js';

const I32: DslType = { kind: 'scalar', name: 'i32' };
const U32: DslType = { kind: 'scalar', name: 'u32' };
const F32: DslType = { kind: 'scalar', name: 'f32' };
const BOOL: DslType = { kind: 'scalar', name: 'bool' };
const U8: DslType = { kind: 'scalar', name: 'u8' };

interface Args {
  readonly nodes: readonly Node[];
  readonly exprs: readonly Expr[];
}

export function translateIntrinsic(ctx: FnContext, name: string, node: CallExpression): Expr {
  const nodes = node.getArguments();
  const a: Args = { nodes, exprs: nodes.map((n) => translateExpr(ctx, n)) };
  const call = (fn: IntrinsicName, args: readonly Expr[], t: DslType): Expr => ({ k: 'call', fn, args, t, loc: locOf(node) });
  const arity = (min: number, max = min) => {
    if (nodes.length < min || nodes.length > max) throw dslError(node, `${name}() takes ${min === max ? min : `${min} to ${max}`} argument(s)`);
  };
  switch (name) {
    case 'floatBits':
      arity(1);
      return call('floatBits', [coerce(a.exprs[0], F32, nodes[0], name)], U32);
    case 'bitsToFloat':
      arity(1);
      return call('bitsToFloat', [coerce(a.exprs[0], U32, nodes[0], name)], F32);
    case 'rsqrt':
    case 'exp2':
    case 'exp2Ftz':
      arity(1);
      return call(name, [coerce(a.exprs[0], F32, nodes[0], name)], F32);
    case 'fma':
      arity(3);
      return call(
        'fma',
        a.exprs.map((e, i) => coerce(e, F32, nodes[i], name)),
        F32,
      );
    case 'popc':
      arity(1);
      return call('popc', [coerce(a.exprs[0], U32, nodes[0], name)], I32);
    case 'encodeE4m3':
      arity(1);
      return call('encodeE4m3', [coerce(a.exprs[0], F32, nodes[0], name)], U8);
    case 'decodeE4m3':
      arity(1);
      return call('decodeE4m3', [coerce(a.exprs[0], U8, nodes[0], name)], F32);
    case 'offset': {
      arity(2);
      const t = typeOf(a.exprs[0]);
      if (t.kind !== 'pointer' && t.kind !== 'array') throw dslError(nodes[0], 'offset(p, n) needs a pointer or array');
      const readonly = t.kind === 'pointer' && t.readonly;
      return { k: 'offset', base: a.exprs[0], n: integer(a, 1, name), t: { kind: 'pointer', space: t.space, elem: t.elem, readonly } };
    }
    case 'syncthreads':
    case 'syncwarp':
    case 'threadfence':
    case 'cpAsyncCommit':
      arity(0);
      return call(name, [], VOID);
    case 'cpAsyncWait': {
      arity(1);
      const n = a.exprs[0];
      if (!isConst(n) || !isInteger(n.t) || (n.v as number) < 0 || (n.v as number) > 7) {
        throw dslError(nodes[0], 'cpAsyncWait(n) needs a compile-time integer 0..7');
      }
      return call('cpAsyncWait', [n], VOID);
    }
    case 'shflXor':
    case 'shflDown':
    case 'shflUp':
    case 'shflIdx':
      return shuffle(name, a, node, call);
    case 'ballot':
      arity(1);
      return call('ballot', [coerce(a.exprs[0], BOOL, nodes[0], name)], U32);
    case 'warpAny':
    case 'warpAll':
      arity(1);
      return call(name, [coerce(a.exprs[0], BOOL, nodes[0], name)], BOOL);
    case 'atomicAdd':
    case 'atomicMax':
    case 'atomicMin':
    case 'atomicExch':
    case 'atomicCAS':
      return atomic(name, a, node, call);
    case 'ldcg': {
      arity(2);
      const { elem } = pointerArg(a, 0, name, ['global'], false);
      return call('ldcg', [a.exprs[0], integer(a, 1, name)], { kind: 'scalar', name: elem });
    }
    case 'vload':
    case 'vstore':
      return vector(name, a, node, call);
    case 'cpAsync16':
    case 'cpAsync8':
    case 'cpAsync4': {
      arity(4);
      const dst = pointerArg(a, 0, name, ['shared'], true);
      const src = pointerArg(a, 2, name, ['global'], false);
      if (dst.elem !== src.elem) throw dslError(node, `${name} copies between arrays of one element type (${dst.elem} vs ${src.elem})`);
      const bytes = name === 'cpAsync16' ? 16 : name === 'cpAsync8' ? 8 : 4;
      if (sizeOf(dst.elem) > bytes) throw dslError(node, `${name} copies ${bytes} bytes, less than one ${dst.elem}`);
      return call(name, [a.exprs[0], integer(a, 1, name), a.exprs[2], integer(a, 3, name)], VOID);
    }
    case 'ldmatrixX4':
    case 'ldmatrixX4Trans': {
      arity(3);
      const dst = localArray(a, 0, name, 8);
      const src = pointerArg(a, 1, name, ['shared'], false);
      if (dst !== src.elem || (dst !== 'f16' && dst !== 'bf16'))
        throw dslError(node, `${name} loads f16 or bf16 fragments from a shared array of the same type`);
      return call(name, [a.exprs[0], a.exprs[1], integer(a, 2, name)], VOID);
    }
    case 'mmaM16N8K16': {
      arity(4);
      const d = localArray(a, 0, name, 4);
      const ta = localArray(a, 1, name, 8);
      const tb = localArray(a, 2, name, 4);
      const c = localArray(a, 3, name, 4);
      if (d !== 'f32' || c !== 'f32' || ta !== tb || (ta !== 'f16' && ta !== 'bf16')) {
        throw dslError(node, 'mmaM16N8K16(d, a, b, c) takes f32[4] accumulators and f16[8]/f16[4] (or bf16) fragments');
      }
      return call('mmaM16N8K16', a.exprs, VOID);
    }
    default:
      throw dslError(node, `${name} cannot be called in kernel code`);
  }
}

function integer(a: Args, i: number, name: string): Expr {
  const e = a.exprs[i];
  const t = scalarOf(e);
  if (!t || !isInteger(t)) throw dslError(a.nodes[i], `argument ${i + 1} of ${name} must be an integer index`);
  return e;
}

function pointerArg(a: Args, i: number, name: string, spaces: readonly string[], write: boolean): { elem: ScalarName } {
  const t = typeOf(a.exprs[i]);
  if ((t.kind !== 'pointer' && t.kind !== 'array') || !spaces.includes(t.space)) {
    throw dslError(a.nodes[i], `argument ${i + 1} of ${name} must be a ${spaces.join(' or ')} pointer or array, got ${describeType(t)}`);
  }
  if (write && t.kind === 'pointer' && t.readonly) throw dslError(a.nodes[i], `${name} writes through argument ${i + 1}, which is read-only (GlobalIn)`);
  return { elem: t.elem };
}

/**
 * A register fragment: a local array of at least `length` elements, or `offset(arr, n)`
 * into one (fragments of several tiles often share one array).
 */
function localArray(a: Args, i: number, name: string, length: number): ScalarName {
  const e = a.exprs[i];
  const t = typeOf(e);
  const ok = (t.kind === 'array' && t.space === 'local' && t.length >= length) || (t.kind === 'pointer' && t.space === 'local' && e.k === 'offset');
  if (!ok)
    throw dslError(a.nodes[i], `argument ${i + 1} of ${name} must be a local<T>(n >= ${length}) array or offset(array, n) into one, got ${describeType(t)}`);
  if (e.k === 'offset' && e.base.k === 'var' && e.base.t.kind === 'array' && isConst(e.n) && (e.n.v as number) + length > e.base.t.length) {
    throw dslError(a.nodes[i], `offset ${String(e.n.v)} leaves fewer than ${length} elements of ${e.base.name}`);
  }
  return t.elem;
}

function shuffle(
  name: 'shflXor' | 'shflDown' | 'shflUp' | 'shflIdx',
  a: Args,
  node: Node,
  call: (fn: IntrinsicName, args: readonly Expr[], t: DslType) => Expr,
): Expr {
  if (a.nodes.length < 2 || a.nodes.length > 3) throw dslError(node, `${name}(value, lane, width?) takes 2 or 3 arguments`);
  const v = a.exprs[0];
  const t = scalarOf(v);
  if (t !== 'f32' && t !== 'i32' && t !== 'u32') throw dslError(a.nodes[0], `${name} moves f32, i32 or u32 values, got ${t ?? 'a pointer'}`);
  const lane = coerce(a.exprs[1], I32, a.nodes[1], name);
  const width = a.exprs[2] ?? { k: 'lit', t: 'i32', v: 32 };
  if (!isConst(width) || ![1, 2, 4, 8, 16, 32].includes(width.v as number)) {
    throw dslError(a.nodes[2] ?? node, `the width of ${name} must be a compile-time power of two up to 32`);
  }
  return call(name, [v, lane, width], { kind: 'scalar', name: t });
}

const ATOMIC_TYPES: Record<string, readonly ScalarName[]> = {
  atomicAdd: ['f32', 'i32', 'u32'],
  atomicMax: ['i32', 'u32'],
  atomicMin: ['i32', 'u32'],
  atomicExch: ['f32', 'i32', 'u32'],
  atomicCAS: ['i32', 'u32'],
};

function atomic(name: string, a: Args, node: Node, call: (fn: IntrinsicName, args: readonly Expr[], t: DslType) => Expr): Expr {
  const n = name === 'atomicCAS' ? 4 : 3;
  if (a.nodes.length !== n) throw dslError(node, `${name} takes ${n} arguments (pointer, index, ${n === 4 ? 'compare, value' : 'value'})`);
  const { elem } = pointerArg(a, 0, name, ['global', 'shared'], true);
  if (!ATOMIC_TYPES[name].includes(elem)) throw dslError(a.nodes[0], `${name} works on ${ATOMIC_TYPES[name].join(', ')} elements, not ${elem}`);
  const t: DslType = { kind: 'scalar', name: elem };
  const values = a.exprs.slice(2).map((e, i) => coerce(e, t, a.nodes[i + 2], name));
  return call(name as IntrinsicName, [a.exprs[0], integer(a, 1, name), ...values], t);
}

function vector(name: 'vload' | 'vstore', a: Args, node: Node, call: (fn: IntrinsicName, args: readonly Expr[], t: DslType) => Expr): Expr {
  if (a.nodes.length !== 3) throw dslError(node, name === 'vload' ? 'vload(dst, src, index) takes 3 arguments' : 'vstore(dst, index, src) takes 3 arguments');
  const regIdx = name === 'vload' ? 0 : 2;
  const memIdx = name === 'vload' ? 1 : 0;
  const reg = typeOf(a.exprs[regIdx]);
  if (reg.kind !== 'array' || reg.space !== 'local') throw dslError(a.nodes[regIdx], `the register side of ${name} must be a local<T>(n) array`);
  const bytes = reg.length * sizeOf(reg.elem);
  if (bytes !== 4 && bytes !== 8 && bytes !== 16)
    throw dslError(a.nodes[regIdx], `${name} moves 4, 8 or 16 bytes; local<${reg.elem}>(${reg.length}) is ${bytes} bytes`);
  const mem = pointerArg(a, memIdx, name, ['global', 'shared'], name === 'vstore');
  if (mem.elem !== reg.elem) throw dslError(node, `${name} needs one element type on both sides (${mem.elem} vs ${reg.elem})`);
  const index = integer(a, name === 'vload' ? 2 : 1, name);
  return call(name, name === 'vload' ? [a.exprs[0], a.exprs[1], index] : [a.exprs[0], index, a.exprs[2]], VOID);
}
