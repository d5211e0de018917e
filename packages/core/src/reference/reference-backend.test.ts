import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeDigest, estimateScore } from '../digest.js';
import { randomArray, rng } from '../test-support/random.js';
import { halfToFloat, bf16ToFloat, decodeFloats, floatToBf16Bits, floatToHalfBits } from './half.js';
import { ReferenceBackend } from './reference-backend.js';

const backend = new ReferenceBackend();

describe('reference paged attention', () => {
  it('equals dense causal attention when every page is resident (random inputs)', () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer(),
          len: fc.integer({ min: 1, max: 40 }),
          pageSize: fc.constantFrom(1, 2, 4, 8),
          kvHeads: fc.constantFrom(1, 2),
          group: fc.constantFrom(1, 2, 4),
          headDim: fc.constantFrom(2, 8),
        }),
        ({ seed, len, pageSize, kvHeads, group, headDim }) => {
          const next = rng(seed);
          const numHeads = kvHeads * group;
          const geometry = { numLayers: 1, numHeads, numKvHeads: kvHeads, headDim, pageSize, bytesPerElement: 4 };
          const q = randomArray(next, len * numHeads * headDim, 2);
          const k = randomArray(next, len * kvHeads * headDim, 2);
          const v = randomArray(next, len * kvHeads * headDim);
          const pages = Math.ceil(len / pageSize);
          const storage = backend.createKvStorage('device', pages + 3, geometry);
          // Pages land in scattered slots, listed in logical order.
          const slots = Array.from({ length: pages }, (_, i) => pages + 2 - i);
          const tok = Array.from({ length: len }, (_, t) => t);
          backend.appendKv(
            storage,
            backend.fromArray(k, [len, kvHeads, headDim]),
            backend.fromArray(v, [len, kvHeads, headDim]),
            backend.fromArray(
              tok.map((t) => slots[Math.floor(t / pageSize)]),
              [len],
              'i32',
            ),
            backend.fromArray(
              tok.map((t) => t % pageSize),
              [len],
              'i32',
            ),
          );
          const scale = 1 / Math.sqrt(headDim);
          const { out } = backend.pagedAttention({
            q: backend.fromArray(q.subarray((len - 1) * numHeads * headDim), [1, numHeads, headDim]),
            storage,
            pageTable: backend.fromArray(slots, [1, 1, pages], 'i32'),
            pageCounts: backend.fromArray([pages], [1, 1], 'i32'),
            lastPageLens: backend.fromArray([len - (pages - 1) * pageSize], [1, 1], 'i32'),
            scale,
          });
          const dense = backend.causalAttention({
            q: backend.fromArray(q, [len, numHeads, headDim]),
            k: backend.fromArray(k, [len, kvHeads, headDim]),
            v: backend.fromArray(v, [len, kvHeads, headDim]),
            scale,
          });
          const want = backend.readSync(dense.out).subarray((len - 1) * numHeads * headDim);
          const got = backend.readSync(out);
          for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want[i])));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('returns per-token probabilities that sum to one per group', () => {
    const geometry = { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 4, pageSize: 4, bytesPerElement: 4 };
    const next = rng(5);
    const storage = backend.createKvStorage('device', 2, geometry);
    backend.appendKv(
      storage,
      backend.fromArray(randomArray(next, 24), [6, 1, 4]),
      backend.fromArray(randomArray(next, 24), [6, 1, 4]),
      backend.fromArray([1, 1, 1, 1, 0, 0], [6], 'i32'),
      backend.fromArray([0, 1, 2, 3, 0, 1], [6], 'i32'),
    );
    const { tokenScores } = backend.pagedAttention({
      q: backend.fromArray(randomArray(next, 8), [1, 2, 4]),
      storage,
      pageTable: backend.fromArray([1, 0], [1, 1, 2], 'i32'),
      pageCounts: backend.fromArray([2], [1, 1], 'i32'),
      lastPageLens: backend.fromArray([2], [1, 1], 'i32'),
      scale: 0.5,
      returnTokenScores: true,
    });
    const s = Array.from(backend.readSync(tokenScores!));
    expect(s.slice(6)).toEqual([0, 0]);
    expect(s.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
  });
});

describe('digests and estimates', () => {
  it('cuboid-mean of a hand-made page', () => {
    // keys (3 tokens x 2 dims): dim0 {0, 2, 4} -> c 2, r 4/3; dim1 {1, 1, 1} -> c 1, r 0.
    const out = new Float32Array(4);
    computeDigest(Float32Array.from([0, 1, 2, 1, 4, 1]), 3, 2, 'cuboid-mean', out, 0);
    expect(Array.from(out)).toEqual([2 + 4 / 3, 1, 2 - 4 / 3, 1].map(Math.fround));
    // q = (1, -2): max(1*3.33, 1*0.67) + max(-2*1, -2*1) = 3.333 - 2
    expect(estimateScore(Float32Array.from([1, -2]), 0, out, 0, 2, 'cuboid-mean')).toBeCloseTo(4 / 3, 5);
  });

  it('cuboid-max and sphere never underestimate the true max q.k of their page', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 16 }),
        fc.constantFrom('cuboid-max' as const, 'sphere' as const),
        (seed, tokens, dim, variant) => {
          const next = rng(seed);
          const keys = randomArray(next, tokens * dim, 10);
          const q = randomArray(next, dim, 10);
          const digest = new Float32Array(2 * dim);
          computeDigest(keys, tokens, dim, variant, digest, 0);
          let trueMax = -Infinity;
          for (let t = 0; t < tokens; t++) {
            let s = 0;
            for (let d = 0; d < dim; d++) s += q[d] * keys[t * dim + d];
            trueMax = Math.max(trueMax, s);
          }
          expect(estimateScore(q, 0, digest, 0, dim, variant)).toBeGreaterThanOrEqual(trueMax - 1e-3 * (1 + Math.abs(trueMax)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('backend estimate averages heads per group over digests of stored pages', () => {
    const geometry = { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2, pageSize: 2, bytesPerElement: 4 };
    const storage = backend.createKvStorage('device', 1, geometry);
    const digests = backend.createDigestStorage(1, geometry);
    backend.appendKv(
      storage,
      backend.fromArray([1, 0, 3, 2], [2, 1, 2]),
      backend.fromArray([0, 0, 0, 0], [2, 1, 2]),
      backend.fromArray([0, 0], [2], 'i32'),
      backend.fromArray([0, 1], [2], 'i32'),
    );
    backend.digestPages(storage, backend.fromArray([0], [1], 'i32'), digests, backend.fromArray([0], [1], 'i32'), 'cuboid-max');
    // box [1,3] x [0,2]; head 0 q=(1,1) -> 5; head 1 q=(-1,0) -> -1.
    const perHead = backend.readSync(backend.estimate(backend.fromArray([1, 1, -1, 0], [2, 2]), digests, backend.fromArray([0], [1], 'i32'), 2, 'cuboid-max'));
    expect(Array.from(perHead)).toEqual([5, -1]);
    const shared = backend.readSync(backend.estimate(backend.fromArray([1, 1, -1, 0], [2, 2]), digests, backend.fromArray([0], [1], 'i32'), 1, 'cuboid-max'));
    expect(Array.from(shared)).toEqual([2]);
  });
});

describe('sampling and half-precision encoding', () => {
  it('samples greedily at temperature 0 or top-k 1, and by inverse CDF otherwise', () => {
    const logits = backend.fromArray([0, Math.log(3), 5, Math.log(1)], [1, 4]);
    const u = (x: number) => backend.fromArray([x], [1]);
    expect(Array.from(backend.readSync(backend.sample(logits, { temperature: 0, topK: 0, topP: 1 }, u(0.9))))).toEqual([2]);
    expect(Array.from(backend.readSync(backend.sample(logits, { temperature: 1, topK: 1, topP: 1 }, u(0.99))))).toEqual([2]);
    // Without the 5: probabilities 1/5, 3/5, 1/5 over ids 0, 1, 3 sorted as 1, 0, 3 (ties by id).
    const two = backend.fromArray([0, Math.log(3), -Infinity, 0], [1, 4]);
    const pick = (x: number, topP = 1) => backend.readSync(backend.sample(two, { temperature: 1, topK: 0, topP }, u(x)))[0];
    expect([pick(0.1), pick(0.65), pick(0.95)]).toEqual([1, 0, 3]);
    // top-p 0.6 keeps only id 1 (cumulative 0.6).
    expect(pick(0.95, 0.6)).toBe(1);
  });

  it('encodes half and bfloat16 with round to nearest even, inverse of decoding', () => {
    expect([1, -2, 65504, 1e6, 2 ** -24, 2 ** -26].map(floatToHalfBits)).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000]);
    // 1 + 2^-11 lies halfway between 1 and the next half: ties go to the even mantissa.
    expect(floatToHalfBits(1 + 2 ** -11)).toBe(0x3c00);
    expect(floatToHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect([floatToBf16Bits(1), floatToBf16Bits(-6)]).toEqual([0x3f80, 0xc0c0]);
    for (let h = 0; h < 0x10000; h++) {
      const x = halfToFloat(h);
      if (!Number.isNaN(x)) expect(floatToHalfBits(x)).toBe(h);
    }
  });

  it('decodes half and bfloat16', () => {
    expect([halfToFloat(0x3c00), halfToFloat(0xc000), halfToFloat(0x0001), halfToFloat(0x7c00)]).toEqual([1, -2, 2 ** -24, Infinity]);
    expect(bf16ToFloat(0x3f80)).toBe(1);
    expect(Array.from(decodeFloats(Uint8Array.from([0x00, 0x3c, 0x00, 0xc0]), 'f16'))).toEqual([1, -2]);
    expect(Array.from(decodeFloats(Uint8Array.from([0x80, 0x3f, 0xc0, 0x40]), 'bf16'))).toEqual([1, 6]);
  });
});

describe('products with stacked weights', () => {
  const b = new ReferenceBackend();
  it('ropeQkv splits one [q | k | v] row per token and rotates q and k in the rotate-half convention (hand-computed)', () => {
    const next = rng(7);
    const [t, heads, kvHeads, d] = [3, 4, 2, 8];
    const [q, k, v] = [heads, kvHeads, kvHeads].map((h) => Array.from(randomArray(next, t * h * d)));
    // Each token's row is its q, then its k, then its v.
    const rows: number[] = [];
    for (let i = 0; i < t; i++)
      rows.push(
        ...q.slice(i * heads * d, (i + 1) * heads * d),
        ...k.slice(i * kvHeads * d, (i + 1) * kvHeads * d),
        ...v.slice(i * kvHeads * d, (i + 1) * kvHeads * d),
      );
    const invFreq = Float32Array.from({ length: d / 2 }, (_, i) => 10000 ** (-(2 * i) / d));
    const table = b.createRopeTable({ headDim: d, maxPositions: 16, invFreq });
    const positions = [5, 0, 11];
    const pos = b.fromArray(positions, [t], 'i32');
    // Dims e and e + d/2 of a head at position p: (x1 cos - x2 sin, x2 cos + x1 sin), angle p * invFreq[e] in float32.
    const rotated = (x: number[], h: number) => {
      const out = new Float32Array(x.length);
      for (let i = 0; i < t; i++) {
        for (let j = 0; j < h; j++) {
          for (let e = 0; e < d / 2; e++) {
            const angle = Math.fround(positions[i] * invFreq[e]);
            const [c, s] = [Math.fround(Math.cos(angle)), Math.fround(Math.sin(angle))];
            const at = (i * h + j) * d + e;
            const [x1, x2] = [Math.fround(x[at]), Math.fround(x[at + d / 2])];
            out[at] = x1 * c - x2 * s;
            out[at + d / 2] = x2 * c + x1 * s;
          }
        }
      }
      return out;
    };
    const [rq, rk, rv] = b.ropeQkv(b.fromArray(rows, [t, (heads + 2 * kvHeads) * d]), pos, table, heads, kvHeads);
    expect(rq.shape).toEqual([t, heads, d]);
    expect(rk.shape).toEqual([t, kvHeads, d]);
    expect(rv.shape).toEqual([t, kvHeads, d]);
    expect(b.readSync(rq)).toEqual(rotated(q, heads));
    expect(b.readSync(rk)).toEqual(rotated(k, kvHeads));
    expect(b.readSync(rv)).toEqual(Float32Array.from(v));
    // Position 0 leaves a head as it is.
    expect(Array.from(b.readSync(rk)).slice(kvHeads * d, 2 * kvHeads * d)).toEqual(Array.from(Float32Array.from(k.slice(kvHeads * d, 2 * kvHeads * d))));
    expect(() => b.ropeQkv(b.fromArray(rows.slice(0, -t * d), [t, (heads + 2 * kvHeads - 1) * d]), pos, table, heads, kvHeads)).toThrow(
      /qkv must be \[T, 64\] for 4 \+ 2 x 2 heads of 8, got \[3, 56\]/,
    );
  });

  it('siluGatePacked is silu(gate) * up of the two halves of each row (hand-computed)', () => {
    const silu = (x: number) => x / (1 + Math.exp(-x));
    // Rows [g0, g1 | u0, u1].
    const out = b.readSync(b.siluGatePacked(b.fromArray([1, -2, 3, 0.5, 0, 4, -1, 2], [2, 4])));
    expect(Array.from(out)).toEqual([silu(1) * 3, silu(-2) * 0.5, silu(0) * -1, silu(4) * 2].map(Math.fround));
    expect(() => b.siluGatePacked(b.fromArray([1, 2, 3], [1, 3]))).toThrow(/gateUp must be \[T, 2I\], got \[1, 3\]/);
  });
});
