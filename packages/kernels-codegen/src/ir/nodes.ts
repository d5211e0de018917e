/**
 * The typed, constant-folded intermediate form of a kernel. The translator builds it
 * from TypeScript; the CUDA emitter and the JS (emulator) emitter print it, so both
 * run the very same program.
 */
import type { DslType, PointerType, ScalarName } from './types.js';

/** Where a node came from, for messages from later stages (the emulator). */
export interface SourceLoc {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export type ArithOp = '+' | '-' | '*' | '/' | '%' | '&' | '|' | '^' | '<<' | '>>' | '>>>';
export type CompareOp = '<' | '<=' | '>' | '>=' | '===' | '!==';
export type LogicOp = '&&' | '||';
export type BinaryOp = ArithOp | CompareOp | LogicOp;

export type BuiltinIndex = `${'threadIdx' | 'blockIdx' | 'blockDim' | 'gridDim'}.${'x' | 'y' | 'z'}`;

export type Expr =
  | { readonly k: 'lit'; readonly t: ScalarName; readonly v: number | boolean }
  | { readonly k: 'var'; readonly name: string; readonly t: DslType }
  | { readonly k: 'builtin'; readonly name: BuiltinIndex; readonly t: 'i32' }
  | { readonly k: 'unary'; readonly op: '-' | '!' | '~'; readonly e: Expr; readonly t: ScalarName }
  /** Arithmetic and logic: operands already converted to `t`. Comparisons: operands of type `ot`, result bool. */
  | { readonly k: 'binary'; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr; readonly t: ScalarName; readonly ot: ScalarName }
  | { readonly k: 'cond'; readonly c: Expr; readonly a: Expr; readonly b: Expr; readonly t: ScalarName }
  | { readonly k: 'index'; readonly base: Expr; readonly i: Expr; readonly t: ScalarName; readonly loc: SourceLoc }
  | { readonly k: 'convert'; readonly to: ScalarName; readonly e: Expr }
  /** A pointer `base + n` elements. */
  | { readonly k: 'offset'; readonly base: Expr; readonly n: Expr; readonly t: PointerType }
  /** A DSL intrinsic (math, bit casts, warp collectives, atomics, memory ops). */
  | { readonly k: 'call'; readonly fn: IntrinsicName; readonly args: readonly Expr[]; readonly t: DslType; readonly loc: SourceLoc }
  /** A call of a helper function of the kernel source, monomorphised under `name`. */
  | { readonly k: 'helper'; readonly name: string; readonly args: readonly Expr[]; readonly t: DslType; readonly loc: SourceLoc };

export type AssignOp = '=' | '+=' | '-=' | '*=' | '/=' | '%=' | '&=' | '|=' | '^=' | '<<=' | '>>=' | '>>>=';

export type Stmt =
  | { readonly k: 'decl'; readonly name: string; readonly t: DslType; readonly init?: Expr; readonly isConst: boolean }
  /** dynamicOffset: a shared array placed in the kernel's dynamic shared memory at this byte offset (output/shared-placement.ts). */
  | { readonly k: 'array'; readonly name: string; readonly t: Extract<DslType, { kind: 'array' }>; readonly dynamicOffset?: number }
  | { readonly k: 'assign'; readonly target: Expr; readonly op: AssignOp; readonly value: Expr; readonly loc: SourceLoc }
  | { readonly k: 'expr'; readonly e: Expr }
  | { readonly k: 'if'; readonly c: Expr; readonly then: readonly Stmt[]; readonly else?: readonly Stmt[] }
  | { readonly k: 'for'; readonly init?: Stmt; readonly c?: Expr; readonly update?: Stmt; readonly body: readonly Stmt[]; readonly unroll: boolean }
  | { readonly k: 'while'; readonly c: Expr; readonly body: readonly Stmt[] }
  | { readonly k: 'dowhile'; readonly c: Expr; readonly body: readonly Stmt[] }
  | { readonly k: 'break' }
  | { readonly k: 'continue' }
  | { readonly k: 'return'; readonly e?: Expr }
  | { readonly k: 'block'; readonly body: readonly Stmt[] }
  /** A comment carried from the source (kept for readable output). */
  | { readonly k: 'comment'; readonly text: string };

export type IntrinsicName =
  // math (f32 unless noted; min/max/abs also integer)
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'abs'
  | 'max'
  | 'min'
  | 'floor'
  | 'ceil'
  | 'tanh'
  | 'sin'
  | 'cos'
  | 'pow'
  | 'exp2'
  | 'exp2Ftz'
  | 'log2'
  | 'fma'
  | 'floatBits'
  | 'bitsToFloat'
  | 'popc'
  // fp8 (e4m3) codes
  | 'encodeE4m3'
  | 'decodeE4m3'
  // memory
  | 'vload'
  | 'vstore'
  // synchronisation
  | 'syncthreads'
  | 'syncwarp'
  | 'threadfence'
  | 'ldcg'
  // warp
  | 'shflXor'
  | 'shflDown'
  | 'shflUp'
  | 'shflIdx'
  | 'ballot'
  | 'warpAny'
  | 'warpAll'
  // atomics
  | 'atomicAdd'
  | 'atomicMax'
  | 'atomicMin'
  | 'atomicExch'
  | 'atomicCAS'
  // async copies and tensor cores
  | 'cpAsync16'
  | 'cpAsync8'
  | 'cpAsync4'
  | 'cpAsyncCommit'
  | 'cpAsyncWait'
  | 'ldmatrixX4'
  | 'ldmatrixX4Trans'
  | 'mmaM16N8K16';

export interface Param {
  readonly name: string;
  readonly t: DslType;
}

/** A device helper function, monomorphised for one set of type arguments. */
export interface HelperFn {
  readonly name: string;
  readonly params: readonly Param[];
  readonly ret: DslType;
  readonly body: readonly Stmt[];
}

/** One specialised kernel, ready to print. */
export interface KernelIR {
  readonly name: string;
  readonly params: readonly Param[];
  readonly body: readonly Stmt[];
  /** Helpers in dependency order (callees first). */
  readonly helpers: readonly HelperFn[];
  readonly blockThreads: number;
  readonly staticSharedBytes: number;
  /** Shared memory asked for at launch (more than the 48 KB a kernel may declare statically); 0 when static. */
  readonly dynamicSharedBytes: number;
  readonly sourceFile: string;
}
