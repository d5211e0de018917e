import { describe, expect, it } from 'vitest';
import { roundHalf } from '../ir/half.js';
import { KernelProject } from '../translate/kernel-project.js';
import { translateKernel } from '../translate/translate-kernel.js';
import { EmulatedKernel } from './emulate.js';
import { EmuBuffer } from './memory.js';

const HEADER = `import { blockIdx, f16, f32, i32, u32, local, shared, shflXor, syncthreads, threadIdx, vload, type Global, type GlobalIn } from '../dsl/index.js';\n`;
const project = new KernelProject({ inMemory: true });
let n = 0;

function kernel(body: string, params = 'out: Global<f32>, n: i32', blockThreads = 64): EmulatedKernel {
  const file = project.addSource(`/emu/k${++n}.kernel.ts`, `${HEADER}export function k(_spec: object, ${params}): void {\n${body}\n}\n`);
  return new EmulatedKernel(translateKernel(project.envs, { file, functionName: 'k', name: 'k', spec: {}, typeArgs: {}, blockThreads }));
}

describe('the emulator runs kernels with CUDA semantics', () => {
  it('integer and float arithmetic behave as in C', () => {
    const out = new EmuBuffer('i32', 6);
    const f = new EmuBuffer('f32', 2);
    kernel(
      `if (threadIdx.x !== 0) return;
  out[0] = n / 2;
  out[1] = n % 4;
  out[2] = n >> 1;
  out[3] = n >>> 28;
  out[4] = i32(u32(n) * 3000000000);
  out[5] = (n + 2147483647) * 1;
  f[0] = f32(n) / 3;
  f[1] = f32(f16(f32(1) / 3));`,
      'out: Global<i32>, f: Global<f32>, n: i32',
      32,
    ).launch(1, { out, f, n: -7 });
    expect(Array.from(out.toInt32())).toEqual([-3, -3, -4, 15, (-7 * 3000000000) | 0, (-7 + 2147483647) | 0]);
    expect(f.toArray()).toEqual([Math.fround(-7 / 3), roundHalf(1 / 3)]);
  });

  it('reports an out-of-bounds access at its source line, with block and thread', () => {
    const k = kernel('out[threadIdx.x + n] = 1;');
    expect(() => k.launch(1, { out: new EmuBuffer('f32', 64), n: 1 })).toThrow(
      /k: global buffer\[64\] is out of bounds \(length 64\) \(block \(0, 0, 0\), thread 63\) at \/emu\/k\d+\.kernel\.ts:3:1/,
    );
  });

  it("reports a shared-memory race (no syncthreads between a write and another thread's read)", () => {
    const k = kernel(`const s = shared<f32>(64);
  s[threadIdx.x] = 1;
  out[threadIdx.x] = s[(threadIdx.x + 1) % 64];`);
    expect(() => k.launch(1, { out: new EmuBuffer('f32', 64), n: 0 })).toThrow(
      /race: reads shared s\[0\] written by thread 0 with no syncthreads\(\) in between/,
    );
    const fixed = kernel(`const s = shared<f32>(64);
  s[threadIdx.x] = f32(threadIdx.x);
  syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % 64];`);
    const out = new EmuBuffer('f32', 64);
    fixed.launch(1, { out, n: 0 });
    expect(out.toArray()[63]).toBe(0);
  });

  it('reports syncthreads() in divergent code', () => {
    const k = kernel(`if (threadIdx.x < 32) {
    syncthreads();
  } else {
    syncthreads();
  }`);
    expect(() => k.launch(1, { out: new EmuBuffer('f32', 1), n: 0 })).toThrow(/threads wait at different barriers/);
  });

  it('reports a warp shuffle after lanes of the warp have exited', () => {
    const k = kernel(`if (threadIdx.x === 5) return;
  out[threadIdx.x] = shflXor(f32(1), 1);`);
    expect(() => k.launch(1, { out: new EmuBuffer('f32', 64), n: 0 })).toThrow(/shflXor with 1 lane\(s\) of the warp exited/);
  });

  it('reports a misaligned vector load', () => {
    const k = kernel(
      `const r = local<f32>(4);
  vload(r, src, 2);
  out[0] = r[0];`,
      'src: GlobalIn<f32>, out: Global<f32>',
      32,
    );
    expect(() => k.launch(1, { src: new EmuBuffer('f32', 8), out: new EmuBuffer('f32', 1) })).toThrow(/vector load of 16 bytes at buffer\[2\] is misaligned/);
  });

  it('refuses arguments of the wrong element type and blocks beyond the launch bounds', () => {
    const k = kernel('out[0] = 1;');
    expect(() => k.launch(1, { out: new EmuBuffer('i32', 1), n: 0 })).toThrow(/argument out must hold f32, got i32/);
    expect(() => k.launch(1, { out: new EmuBuffer('f32', 1), n: 0 }, 128)).toThrow(/exceeds __launch_bounds__\(64\)/);
  });
});
