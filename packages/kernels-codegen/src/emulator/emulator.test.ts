import { e4m3ToFloat, floatToE4m3Bits } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { printKernelHeader } from '../emit/cuda/kernel-source.js';
import { roundHalf } from '../ir/half.js';
import { KernelProject } from '../translate/kernel-project.js';
import { translateKernel } from '../translate/translate-kernel.js';
import { EmulatedKernel } from './emulate.js';
import { EmuBuffer } from './memory.js';

const HEADER = `import { blockIdx, cpAsync4, cpAsync8, cpAsyncCommit, cpAsyncWait, decodeE4m3, encodeE4m3, f16, f32, i32, u32, u8, local, shared, shflXor, syncthreads, threadIdx, vload, vstore, type Global, type GlobalIn } from '../dsl/index.js';\n`;
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

  it('moves bytes (u8) and converts them explicitly, as C does', () => {
    const out = new EmuBuffer('u8', 16);
    const sum = new EmuBuffer('u32', 1);
    kernel(
      `if (threadIdx.x !== 0) return;
  const b = local<u8>(8);
  vload(b, src, 8);
  let total: u32 = 0;
  for (let i = 0; i < 8; i++) total += u32(b[i]);
  sum[0] = total;
  for (let i = 0; i < 8; i++) b[i] = u8(i32(b[i]) - 3 * i - 1);
  vstore(out, 0, b);
  out[8] = u8(n);
  out[9] = 0;`,
      'src: GlobalIn<u8>, out: Global<u8>, sum: Global<u32>, n: i32',
      32,
    ).launch(1, {
      src: EmuBuffer.from(
        'u8',
        [...Array(16).keys()].map((i) => i * 17),
      ),
      out,
      sum,
      n: -2,
    });
    expect(sum.toArray()).toEqual([(8 + 9 + 10 + 11 + 12 + 13 + 14 + 15) * 17]);
    expect(out.toArray().slice(0, 10)).toEqual([...Array(8).keys()].map((i) => ((8 + i) * 17 - 3 * i - 1) & 255).concat([254, 0]));
  });

  it('encodes and decodes e4m3 with core codec, bit for bit', () => {
    const inputs = [0, -0, 1, -1.0625, 448, 464, 465, -1e9, 2 ** -10, 2 ** -9, 3 * 2 ** -11, 0.3, Number.NaN, Number.POSITIVE_INFINITY];
    const codes = new EmuBuffer('u8', inputs.length);
    const back = new EmuBuffer('f32', 256);
    kernel(
      `for (let i = threadIdx.x; i < n; i += 64) codes[i] = encodeE4m3(x[i]);
  for (let c = threadIdx.x; c < 256; c += 64) back[c] = decodeE4m3(u8(c));`,
      'x: GlobalIn<f32>, codes: Global<u8>, back: Global<f32>, n: i32',
    ).launch(1, { x: EmuBuffer.from('f32', inputs), codes, back, n: inputs.length });
    expect(codes.toArray()).toEqual(inputs.map(floatToE4m3Bits));
    expect(back.toArray()).toEqual([...Array(256).keys()].map(e4m3ToFloat));
  });

  it('copies 8 and 4 bytes with cp.async and checks their alignment', () => {
    const k = kernel(
      `const s = shared<u8>(64 * 12);
  cpAsync8(s, threadIdx.x * 8, src, threadIdx.x * 8);
  cpAsync4(s, 512 + threadIdx.x * 4, src, n + threadIdx.x * 4);
  cpAsyncCommit();
  cpAsyncWait(0);
  const b = local<u8>(8);
  vload(b, s, threadIdx.x * 8);
  vstore(out, threadIdx.x * 16, b);
  const w = local<u8>(4);
  vload(w, s, 512 + threadIdx.x * 4);
  vstore(out, threadIdx.x * 16 + 8, w);`,
      'src: GlobalIn<u8>, out: Global<u8>, n: i32',
    );
    const src = EmuBuffer.from(
      'u8',
      [...Array(1024).keys()].map((i) => (i * 7) & 255),
    );
    const out = new EmuBuffer('u8', 64 * 16).fill(9);
    k.launch(1, { src, out, n: 512 });
    const want = [...Array(64).keys()].flatMap((t) =>
      [...Array(8).keys()]
        .map((i) => ((t * 8 + i) * 7) & 255)
        .concat(
          [...Array(4).keys()].map((i) => ((512 + t * 4 + i) * 7) & 255),
          [9, 9, 9, 9],
        ),
    );
    expect(out.toArray()).toEqual(want);
    expect(() => k.launch(1, { src, out, n: 2 })).toThrow(/cp\.async source of 4 bytes at buffer\[2\] is misaligned/);
  });

  it('prints bytes as unsigned char and the fp8 conversions as the prelude helpers', () => {
    const file = project.addSource(
      '/emu/print.kernel.ts',
      `${HEADER}export function k(_spec: object, src: GlobalIn<u8>, out: Global<f32>, codes: Global<u8>): void {\n  out[threadIdx.x] = decodeE4m3(src[threadIdx.x]) + f32(src[0]);\n  codes[threadIdx.x] = encodeE4m3(out[0]);\n  codes[0] = 7;\n}\n`,
    );
    const text = printKernelHeader(
      translateKernel(project.envs, { file, functionName: 'k', name: 'k', spec: {}, typeArgs: {}, blockThreads: 32 }),
      'print',
      [],
    );
    expect(text).toContain('const unsigned char* __restrict__ src');
    expect(text).toContain('out[(int)threadIdx.x] = arkvale::e4m3_decode(src[(int)threadIdx.x]) + (float)src[0];');
    expect(text).toContain('codes[(int)threadIdx.x] = arkvale::e4m3_encode(out[0]);');
    expect(text).toContain('codes[0] = (unsigned char)7;');
  });
});
