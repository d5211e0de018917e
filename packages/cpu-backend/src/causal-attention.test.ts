import { ReferenceBackend, type CausalAttentionArgs } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu-backend.js';
import { expectClose } from './test-support/compare.js';
import { simdLevels, withSimd } from './test-support/native-levels.js';
import { randomArray, rng } from './test-support/random.js';

const reference = new ReferenceBackend();
const cpu = new CpuBackend();

type KeyScores = CausalAttentionArgs['keyScores'];

// [tokens, heads, kvHeads, headDim, keyScores]: one token, odd sizes, GQA groups
// of 1, 2 and 4, and lengths crossing the kernel's 96-query and 64-key blocks.
const CASES: [number, number, number, number, KeyScores][] = [
  [1, 1, 1, 4, undefined],
  [1, 4, 2, 8, 'sum'],
  [5, 2, 1, 13, 'last'],
  [7, 3, 3, 5, 'sum'],
  [33, 4, 1, 16, undefined],
  [65, 4, 2, 32, 'last'],
  [97, 2, 2, 24, 'sum'],
  [150, 4, 2, 64, 'sum'],
  [200, 4, 4, 20, 'last'],
  [130, 4, 2, 128, undefined],
];

function attention(backend: ReferenceBackend, seed: number, t: number, h: number, hkv: number, d: number, keyScores: KeyScores) {
  const next = rng(seed);
  // Larger queries and keys give peaked softmaxes, where stability matters.
  const q = randomArray(next, t * h * d, 2);
  const k = randomArray(next, t * hkv * d, 2);
  const v = randomArray(next, t * hkv * d);
  return backend.causalAttention({
    q: backend.fromArray(q, [t, h, d]),
    k: backend.fromArray(k, [t, hkv, d]),
    v: backend.fromArray(v, [t, hkv, d]),
    scale: 1 / Math.sqrt(d),
    keyScores,
  });
}

describe.each(simdLevels())('CpuBackend.causalAttention (%s kernels)', (level) => {
  it.each(CASES)('matches the reference: T %i, heads %i / %i KV, dim %i, key scores %s', (t, h, hkv, d, keyScores) => {
    const seed = t * 7919 + h * 131 + hkv * 17 + d;
    const got = withSimd(level, () => attention(cpu, seed, t, h, hkv, d, keyScores));
    const want = attention(reference, seed, t, h, hkv, d, keyScores);
    expect(got.out.shape).toEqual([t, h, d]);
    expectClose(cpu.readSync(got.out), reference.readSync(want.out), 'out');
    if (keyScores) {
      expect(got.keyScores?.shape).toEqual([t]);
      expectClose(cpu.readSync(got.keyScores!), reference.readSync(want.keyScores!), `keyScores ${keyScores}`);
    } else {
      expect(got.keyScores).toBeUndefined();
    }
  });
});

describe('CpuBackend.causalAttention errors', () => {
  const f = (shape: number[]) => cpu.fromArray(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);

  it('rejects q, k and v of different lengths like the reference', () => {
    const args = { q: f([4, 2, 8]), k: f([3, 1, 8]), v: f([3, 1, 8]), scale: 1 };
    expect(() => cpu.causalAttention(args)).toThrow(/causalAttention: q \[4,2,8\] k \[3,1,8\] v \[3,1,8\] do not match/);
    expect(() => reference.causalAttention(args)).toThrow(/do not match/);
  });

  it('rejects values shaped unlike the keys and KV heads that do not divide the heads', () => {
    expect(() => cpu.causalAttention({ q: f([4, 2, 8]), k: f([4, 1, 8]), v: f([4, 2, 8]), scale: 1 })).toThrow(/do not match/);
    expect(() => cpu.causalAttention({ q: f([4, 3, 8]), k: f([4, 2, 8]), v: f([4, 2, 8]), scale: 1 })).toThrow(
      'causalAttention: 2 KV heads do not divide 3 heads',
    );
  });
});
