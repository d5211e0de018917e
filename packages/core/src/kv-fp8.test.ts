import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { E4M3_MAX, dequantizeHead, e4m3ScaleByte, e4m3ScaleFactor, e4m3ToFloat, floatToE4m3Bits, quantizeHead } from './kv-fp8.js';

const f32 = Math.fround;
/** The float32 with these bits. */
const fromBits = (bits: number): number => new Float32Array(Uint32Array.of(bits >>> 0).buffer)[0];
const bitsOf = (v: number): number => new Uint32Array(Float32Array.of(v).buffer)[0];

/** Finite non-negative codes 0x00..0x7e and their values, ascending. */
const FINITE = Array.from({ length: 0x7f }, (_, c) => ({ c, v: e4m3ToFloat(c) }));

/** Independent oracle: the nearest finite e4m3 value of the float32 of `x` (ties to the even code), NaN to 0x7f. */
function oracle(x: number): number {
  const v = f32(x);
  if (Number.isNaN(v)) return 0x7f;
  const sign = v < 0 || Object.is(v, -0) ? 0x80 : 0;
  const m = Math.abs(v);
  if (m >= E4M3_MAX) return sign | 0x7e; // the nearest finite value (differences from huge m would round alike)
  let best = FINITE[0];
  for (const cand of FINITE) {
    const d = Math.abs(cand.v - m);
    const bd = Math.abs(best.v - m);
    if (d < bd || (d === bd && (cand.c & 1) === 0 && (best.c & 1) === 1)) best = cand;
  }
  return sign | best.c;
}

describe('e4m3 encoding (round to nearest even, saturating)', () => {
  it('hand-computed values', () => {
    const cases: [number, number][] = [
      [0, 0x00],
      [-0, 0x80],
      [1, 0x38],
      [-1.5, 0xbc],
      [1.125, 0x39],
      [0.1, 0x1d], // 1.6 * 2^-4: mantissa 4.8 eighths -> 5, 0.1015625
      [2 ** -6, 0x08], // smallest normal
      [2 ** -9, 0x01], // smallest subnormal
      [7 * 2 ** -9, 0x07], // largest subnormal
      [240, 0x77],
      [416, 0x7d],
      [E4M3_MAX, 0x7e],
      [-E4M3_MAX, 0xfe],
    ];
    for (const [x, code] of cases) expect([x, floatToE4m3Bits(x)]).toEqual([x, code]);
  });

  it('rounds ties to the even code in every range', () => {
    const ties: [number, number][] = [
      [2 ** -10, 0x00], // half the smallest subnormal: 0 is even
      [-(2 ** -10), 0x80],
      [3 * 2 ** -10, 0x02], // 1.5 subnormal steps -> 2
      [5 * 2 ** -10, 0x02], // 2.5 -> 2
      [7 * 2 ** -10, 0x04], // 3.5 -> 4
      [7.5 * 2 ** -9, 0x08], // between the largest subnormal (odd) and the smallest normal
      [1.0625, 0x38], // between 1 (even) and 1.125
      [1.1875, 0x3a], // between 1.125 (odd) and 1.25
      [-1.1875, 0xba],
      [248, 0x78], // between 240 (odd) and 256: a carry into the exponent
      [432, 0x7e], // between 416 (odd) and 448
      [456, 0x7e], // between 448 and 480 (not finite): 448
    ];
    for (const [x, code] of ties) expect([x, floatToE4m3Bits(x)]).toEqual([x, code]);
    // Just past a tie rounds away from it.
    expect(floatToE4m3Bits(fromBits(bitsOf(2 ** -10) + 1))).toBe(0x01);
    expect(floatToE4m3Bits(fromBits(bitsOf(1.0625) + 1))).toBe(0x39);
    expect(floatToE4m3Bits(fromBits(bitsOf(1.0625) - 1))).toBe(0x38);
  });

  it('rounds the float32 of its argument, not the double', () => {
    // 1.0625 + 1e-12 is above the tie as a double, but its float32 is the tie itself.
    expect(floatToE4m3Bits(1.0625 + 1e-12)).toBe(0x38);
  });

  it('saturates to +-448 past 448 and for infinities; NaN is 0x7f whatever its sign', () => {
    for (const x of [449, 464, 465, 480, 1e6, 3.4e38, Number.POSITIVE_INFINITY]) {
      expect(floatToE4m3Bits(x)).toBe(0x7e);
      expect(floatToE4m3Bits(-x)).toBe(0xfe);
    }
    expect(floatToE4m3Bits(Number.NaN)).toBe(0x7f);
    expect(floatToE4m3Bits(fromBits(0xffc00000))).toBe(0x7f);
    expect(floatToE4m3Bits(fromBits(0x7f800001))).toBe(0x7f);
  });

  it('flushes magnitudes up to 2^-10 (float32 subnormals included) to a signed zero', () => {
    for (const x of [2 ** -11, 2 ** -100, fromBits(1), fromBits(0x007fffff)]) {
      expect(floatToE4m3Bits(x)).toBe(0x00);
      expect(floatToE4m3Bits(-x)).toBe(0x80);
    }
  });

  it('decodes every code: subnormals, normals, 448, NaN at 0x7f and 0xff', () => {
    expect(e4m3ToFloat(0x01)).toBe(2 ** -9);
    expect(e4m3ToFloat(0x07)).toBe(7 * 2 ** -9);
    expect(e4m3ToFloat(0x08)).toBe(2 ** -6);
    expect(e4m3ToFloat(0x38)).toBe(1);
    expect(e4m3ToFloat(0x7e)).toBe(448);
    expect(e4m3ToFloat(0xfe)).toBe(-448);
    expect(Object.is(e4m3ToFloat(0x80), -0)).toBe(true);
    expect(e4m3ToFloat(0x7f)).toBeNaN();
    expect(e4m3ToFloat(0xff)).toBeNaN();
    // The 254 finite codes round-trip.
    for (let c = 0; c < 256; c++) if ((c & 0x7f) !== 0x7f) expect(floatToE4m3Bits(e4m3ToFloat(c))).toBe(c);
  });

  it('agrees with the nearest-value oracle at every midpoint, a few float32 ulps either side, and on a structured sweep', () => {
    const xs: number[] = [];
    for (let i = 0; i + 1 < FINITE.length; i++) {
      const mid = (FINITE[i].v + FINITE[i + 1].v) / 2; // exact in float32
      for (let k = -2; k <= 2; k++) xs.push(fromBits(bitsOf(mid) + k));
    }
    // Every float32 exponent and top mantissa bits, with low bits 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff.
    for (let hi = 0; hi < 0x8000; hi += 3) for (const lo of [0, 1, 0x7fff, 0x8000, 0x8001, 0xffff]) xs.push(fromBits((hi << 16) | lo));
    for (const x of xs) {
      if (floatToE4m3Bits(x) !== oracle(x) || floatToE4m3Bits(-x) !== oracle(-x)) {
        expect([x, floatToE4m3Bits(x), floatToE4m3Bits(-x)]).toEqual([x, oracle(x), oracle(-x)]);
      }
    }
  });
});

describe('e4m3 scales (one power-of-two byte per row)', () => {
  it('hand-computed scale bytes', () => {
    expect(e4m3ScaleByte(1)).toBe(119); // 1 * 2^8 = 256
    expect(e4m3ScaleByte(1.75)).toBe(119); // 1.75 * 2^8 = 448 exactly
    expect(e4m3ScaleByte(fromBits(bitsOf(1.75) + 1))).toBe(120); // just above: * 2^7, about 224
    expect(e4m3ScaleByte(448)).toBe(127); // factor 1
    expect(e4m3ScaleByte(-448)).toBe(127);
    expect(e4m3ScaleByte(2 ** 126)).toBe(245);
    expect(e4m3ScaleByte(3.4028234663852886e38)).toBe(247);
    expect(e4m3ScaleByte(2 ** -126)).toBe(1); // clamped
    for (const x of [0, -0, 2 ** -130, Number.POSITIVE_INFINITY, Number.NaN]) expect(e4m3ScaleByte(x)).toBe(127);
    expect(e4m3ScaleFactor(127)).toBe(1);
    expect(e4m3ScaleFactor(119)).toBe(2 ** -8);
    expect(e4m3ScaleFactor(0)).toBe(2 ** -127);
  });

  it('maps a row maximum into (224, 448]: nothing saturates', () => {
    fc.assert(
      fc.property(fc.float({ min: f32(2 ** -100), max: f32(2 ** 100), noNaN: true }), (amax) => {
        const scaled = amax * 2 ** (127 - e4m3ScaleByte(amax));
        return scaled > 224 && scaled <= 448;
      }),
      { numRuns: 5000 },
    );
  });

  it('quantizeHead: relative error at most 2^-4 (half an ulp of 3 mantissa bits), absolute below the subnormal step', () => {
    const row = fc.array(fc.float({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 32 });
    fc.assert(
      fc.property(row, (xs) => {
        const src = Float32Array.from(xs);
        const codes = new Uint8Array(src.length);
        const s = quantizeHead(src, 0, src.length, codes, 0);
        const out = new Float32Array(src.length);
        dequantizeHead(codes, 0, src.length, s, out, 0);
        const step = 2 ** (s - 127 - 10); // half the subnormal step, scaled
        return [...src].every((x, i) => Math.abs(out[i] - x) <= Math.max(2 ** -4 * Math.abs(x), step) && Math.sign(out[i]) * Math.sign(x) >= 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('quantizeHead on special rows: zeros, values already e4m3 times a power of two, NaN and infinities', () => {
    const codes = new Uint8Array(4);
    const out = new Float32Array(4);
    expect(quantizeHead(new Float32Array(4), 0, 4, codes, 0)).toBe(127);
    expect([...codes]).toEqual([0, 0, 0, 0]);
    // 1.75 * 2^-20 is the maximum: scale 2^-28, so the row's values scale to 448, 256, -1 and 1.125 (exact).
    const exact = Float32Array.of(1.75 * 2 ** -20, 2 ** -20, -(2 ** -28), 1.125 * 2 ** -28);
    const s = quantizeHead(exact, 0, 4, codes, 0);
    expect(e4m3ScaleFactor(s)).toBe(2 ** -28);
    expect([...codes]).toEqual([0x7e, 0x78, 0xb8, 0x39]);
    dequantizeHead(codes, 0, 4, s, out, 0);
    expect([...out]).toEqual([...exact]);
    // A NaN or an infinity is the largest magnitude: factor 1, NaN -> 0x7f, infinity -> 448, the rest at scale 1.
    expect(quantizeHead(Float32Array.of(1, Number.NaN, -3, 0.1), 0, 4, codes, 0)).toBe(127);
    expect([...codes]).toEqual([0x38, 0x7f, 0xc4, 0x1d]);
    expect(quantizeHead(Float32Array.of(1, Number.NEGATIVE_INFINITY, 500, 0), 0, 4, codes, 0)).toBe(127);
    expect([...codes]).toEqual([0x38, 0xfe, 0x7e, 0x00]);
  });
});
