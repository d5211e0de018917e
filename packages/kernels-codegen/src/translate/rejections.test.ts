/**
 * Every construct outside the DSL is an error located at file:line:column with a
 * message saying what to write instead. Each case marks the expected position with
 * `@@` (removed before translation).
 */
import { describe, expect, it } from 'vitest';
import { DslError } from './errors.js';
import { KernelProject } from './kernel-project.js';
import { translateKernel } from './translate-kernel.js';

const HEADER = `import { blockIdx, f32, i32, u32, u8, ldcg, local, shared, shflXor, vload, cpAsyncWait, syncthreads, threadIdx, type Global, type GlobalIn, type Shared, type f16 } from '../dsl/index.js';
interface Spec { readonly n: number; readonly mode: string }
`;

/** [what, module-level code (optional), kernel body with @@ at the error, message fragment] */
const CASES: readonly [string, string, string, string][] = [
  ['a class', '', '@@class C {}', 'classes are not allowed'],
  ['an arrow function', '', 'const f = @@() => 1;', 'closures are not allowed'],
  ['an object literal', '', 'const o = @@{ a: 1 };', 'object literals are not allowed'],
  ['an array literal', '', 'const a = @@[1, 2];', 'use local<T>(n)'],
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the kernel source under test holds a template string
  ['a template string', '', 'const s = @@`x${n}`;', 'strings exist only at compile time'],
  ['new', '', 'const a = @@new Float32Array(4);', 'use shared<T>(n) or local<T>(n)'],
  ['a type assertion', '', 'const a = (@@n as f32);', 'type assertions do not convert'],
  ['a non-null assertion', '', 'const a = @@n!;', 'never null'],
  ['var', '', '@@var a = 1;', 'use let or const'],
  ['== ', '', 'if (n @@== 1) return;', 'use ==='],
  ['**', '', 'const a = n @@** 2;', 'Math.pow'],
  ['??', '', 'const a = n @@?? 1;', 'never null or undefined'],
  ['for...of', '', '@@for (const x of [1]) {}', 'counted for loop'],
  ['for...in', '', '@@for (const x in {}) {}', 'counted for loop'],
  ['switch', '', '@@switch (n) { default: }', 'use if / else if'],
  ['try/catch', '', '@@try {} catch {}', 'kernels cannot throw'],
  ['throw', '', '@@throw 1;', 'kernels cannot throw'],
  ['a nested function', '', '@@function g() {}', 'declare helper functions at module level'],
  ['a label', '', '@@outer: for (let i = 0; i < 2; i++) {}', 'labels are not allowed'],
  ['destructuring', '', 'const @@{ a } = { a: 1 };', 'destructuring is not allowed'],
  ['a `number` annotation', '', 'let a: @@number = 1;', 'write f32, i32, u32 or i64'],
  ['an unknown type', '', 'let a: @@Date = 1;', 'unknown kernel type'],
  ['let without type or value', '', 'let @@a;', 'needs a type annotation or an initializer'],
  ['arithmetic on f16', '', 'const h: f16 = x[0]; const a = @@h + 1;', 'convert with f32(x) first'],
  ['implicit f32 -> i32', '', 'const a: i32 = @@f32(n) * 0.5;', 'cannot convert f32 to i32 implicitly'],
  ['mixed i32 and u32', '', 'const a = @@n + u32(n);', 'convert one side'],
  ['a write through GlobalIn', '', '@@x[0] = x[1];', 'read-only'],
  ['shared storage in a block', '', 'if (n > 0) { const s = @@shared<f32>(4); }', 'only at the top level of a kernel'],
  ['shared storage of runtime length', '', 'const s = shared<f32>(@@n);', 'positive compile-time integer'],
  ['an unknown name', '', 'const a = @@nope + 1;', 'unknown name `nope`'],
  ['an unknown function', '', 'const a = @@nope(1);', 'unknown function `nope`'],
  ['a string value', '', 'const a = spec.mode;\n  out[0] = @@a;', 'compile-time strings can only be compared'],
  ['recursion', 'function r(v: f32): f32 { return @@r(v); }\n', 'out[0] = r(1);', 'recursion is not allowed'],
  ['a helper without return type', 'function @@h(v: f32) { return v; }\n', 'out[0] = h(1);', 'needs a declared return type'],
  ['a non-bool condition', '', 'if (@@n) return;', 'must be bool'],
  ['++ inside an expression', '', 'const a = @@n++ + 1;', '++ and -- are statements'],
  ['an assignment inside an expression', '', 'let b = 0;\n  const a = (@@b = 2) + 1;', 'assignments are statements'],
  ['optional chaining', '', 'const a = @@spec?.n;', 'optional chaining'],
  ['a shift past the width', '', 'const a = @@n << 40;', 'outside 0..31'],
  ['Math.round', '', 'const a = @@Math.round(f32(n));', 'Math.floor(x + 0.5)'],
  ['an unknown spec field', '', 'const a = spec.@@width;', 'no field `width`'],
  ['a kernel returning a value', '', 'return @@1;', 'kernels return nothing'],
  ['ldcg from shared memory', '', 'const s = shared<f32>(4);\n  out[0] = ldcg(@@s, 0);', 'must be a global pointer or array'],
  ['a vector of the wrong size', '', 'const r = local<f16>(3);\n  vload(@@r, x, 0);', 'moves 4, 8 or 16 bytes'],
  ['a shuffle width that is not constant', '', 'const a = shflXor(f32(n), 1, @@n);', 'compile-time power of two'],
  ['cpAsyncWait of a runtime count', '', 'cpAsyncWait(@@n);', 'compile-time integer'],
  ['typeof', '', 'const a = @@typeof n;', 'typeof is not allowed'],
  ['this', '', 'const a = @@this;', '`this` does not exist'],
  ['null', '', 'const a = @@null;', '`null` does not exist'],
  ['a bigint literal', '', 'const a = @@10n;', 'bigint literals are not allowed'],
  ['break outside a loop', '', '@@break;', 'outside a loop'],
  ['integer division by zero', '', 'const a = @@n / 0 + spec.n / 0;', 'integer division by zero'],
  ['% on floats', '', 'const a = @@f32(n) % 2;', 'needs integer operands'],
  ['reading an undeclared component', '', 'const a = threadIdx.@@w;', 'components x, y and z'],
  ['arithmetic on u8', '', 'const b = u8(n); const a = @@b + 1;', 'u8 is a storage type'],
  ['u8 of a float', '', 'const a = @@u8(f32(n));', 'u8(x) converts i32 or u32 values'],
  ['implicit u8 -> i32', '', 'const b = u8(n); const a: i32 = @@b;', 'u8 is a storage type: convert with i32(x)'],
];

describe('rejected constructs are located errors', () => {
  const project = new KernelProject({ inMemory: true });
  it.each(CASES)('%s', (_what, moduleCode, body, message) => {
    const text = `${HEADER}${moduleCode}export function k(spec: Spec, x: GlobalIn<f16>, out: Global<f32>, n: i32): void {\n  ${body}\n}\n`;
    const at = text.indexOf('@@');
    expect(at).toBeGreaterThan(0);
    const before = text.slice(0, at).split('\n');
    const want = { line: before.length, column: before[before.length - 1].length + 1 };
    const file = project.addSource('/kernels/case.kernel.ts', text.replace('@@', ''));
    let error: unknown;
    try {
      translateKernel(project.envs, { file, functionName: 'k', name: 'k', spec: { n: 4, mode: 'a' }, typeArgs: {}, blockThreads: 32 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DslError);
    const e = error as DslError;
    expect(e.reason).toContain(message);
    expect({ line: e.line, column: e.column }).toEqual(want);
    expect(e.message).toBe(`/kernels/case.kernel.ts:${want.line}:${want.column}: error: ${e.reason}`);
  });

  it('kernel parameters must be scalars or global pointers', () => {
    const file = project.addSource('/kernels/param.kernel.ts', `${HEADER}export function k(spec: Spec, s: Shared<f32>): void {}\n`);
    expect(() => translateKernel(project.envs, { file, functionName: 'k', name: 'k', spec: { n: 1, mode: 'a' }, typeArgs: {}, blockThreads: 32 })).toThrow(
      /param\.kernel\.ts:3:34: error: kernel parameters are scalars or Global\/GlobalIn pointers/,
    );
  });

  it("an unbound type parameter names the kernel definition's types()", () => {
    const file = project.addSource('/kernels/generic.kernel.ts', `${HEADER}export function k<T>(spec: Spec, x: Global<T>): void {}\n`);
    expect(() => translateKernel(project.envs, { file, functionName: 'k', name: 'k', spec: { n: 1, mode: 'a' }, typeArgs: {}, blockThreads: 32 })).toThrow(
      /generic\.kernel\.ts:3:19: error: type parameter T is not bound/,
    );
  });
});
