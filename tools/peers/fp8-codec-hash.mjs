#!/usr/bin/env node
// Every float32 through @arkvale/core's e4m3 encoder (floatToE4m3Bits), against the
// recorded FNV-1a hashes of the codes that CUDA's __nv_cvt_float_to_fp8(x,
// __NV_SATFINITE, __NV_E4M3) gives for bits 0 .. 2^32 - 1, in four quarters (recorded
// on an H100, sm_90 hardware conversion, and with CUDA 13.0's software path: the same).
// About 70 s a quarter on one core; too slow for CI, whose unit tests check every
// midpoint and a structured sweep instead (packages/core/src/kv-fp8.test.ts).
//
//   node tools/peers/fp8-codec-hash.mjs      exit code 0 when all four quarters match
import { floatToE4m3Bits } from '@arkvale/core';

const want = ['a0dc9dc5', '717c9dc5', '40dc9dc5', '417c9d45'];
const bits = new Uint32Array(1);
const value = new Float32Array(bits.buffer);
let failed = 0;
for (let q = 0; q < 4; q++) {
  const t0 = performance.now();
  let h = 0x811c9dc5;
  for (let i = q * 2 ** 30; i < (q + 1) * 2 ** 30; i++) {
    bits[0] = i;
    h = Math.imul(h ^ floatToE4m3Bits(value[0]), 0x01000193) >>> 0;
  }
  const got = h.toString(16).padStart(8, '0');
  const ok = got === want[q];
  if (!ok) failed++;
  console.error(`quarter ${q + 1}/4: ${got} ${ok ? 'matches' : `differs from ${want[q]}`} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
process.exit(failed ? 1 : 0);
