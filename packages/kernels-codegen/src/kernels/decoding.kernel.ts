/**
 * Token choice from logits [rows, vocab], one block per row (Backend.argmax,
 * Backend.sample; semantics of core's dense.argmax / dense.sample).
 *
 * The vocabulary is ordered by a 64-bit key, logit descending then index ascending
 * (the reference's sort order), and every threshold is found by a bitwise search on
 * that key over block-wide counts or sums, so nothing is sorted:
 * - top-k keeps the keys >= the k-th largest key;
 * - top-p keeps the keys down to the first whose running mass reaches topP;
 * - the token is the first key whose running mass exceeds u * (kept mass): inverse-CDF
 *   sampling with the caller's uniform u, so the same inputs give the same token.
 */
import {
  blockDim,
  blockIdx,
  f32,
  floatBits,
  i32,
  i64,
  local,
  shared,
  shflXor,
  syncthreads,
  threadIdx,
  u32,
  type Global,
  type GlobalIn,
  type Local,
  type Shared,
  type bool,
} from '../dsl/index.js';
import { defineKernel } from '../spec/define-kernel.js';
import { arg } from '../spec/geometry.js';
import type { Matrix } from '../spec/matrix.js';
import { blockCount, blockMax, blockSum } from './common.js';

export interface LogitsSpec {
  readonly dtype: 'f32' | 'f16' | 'bf16';
}

const THREADS = 512;

/** High key half: larger logit, larger key (-0 counts as +0). */
function logitKey(x: f32): u32 {
  const b = floatBits(x + 0.0);
  return (b & 0x80000000) !== 0 ? ~b : b | 0x80000000;
}

/** Low key half: lower index, larger key. */
function indexKey(i: i32): u32 {
  return u32(0xffffffff) - u32(i);
}

function atLeast(hi: u32, lo: u32, thHi: u32, thLo: u32): bool {
  return hi > thHi || (hi === thHi && lo >= thLo);
}

/** Whether key (h, l) is larger (`largest`) or smaller than (hi, lo). */
function beats(largest: bool, h: u32, l: u32, hi: u32, lo: u32): bool {
  return largest ? h > hi || (h === hi && l > lo) : h < hi || (h === hi && l < lo);
}

/**
 * The largest (or, with `largest` false, the smallest) key of the row in one pass, into
 * key[0..1]: each thread keeps its best, then warp shuffles and a pair of `slots` (64)
 * per warp.
 */
function extremeKey<T extends number>(row: GlobalIn<T>, base: i64, vocab: i32, largest: bool, slots: Shared<u32>, key: Local<u32>): void {
  const start: u32 = largest ? 0 : 0xffffffff;
  let hi: u32 = start;
  let lo: u32 = start;
  for (let i = threadIdx.x; i < vocab; i += blockDim.x) {
    const h = logitKey(f32(row[base + i]));
    const l = indexKey(i);
    if (beats(largest, h, l, hi, lo)) {
      hi = h;
      lo = l;
    }
  }
  for (let o = 16; o > 0; o >>= 1) {
    const h = shflXor(hi, o);
    const l = shflXor(lo, o);
    if (beats(largest, h, l, hi, lo)) {
      hi = h;
      lo = l;
    }
  }
  if ((threadIdx.x & 31) === 0) {
    slots[threadIdx.x >> 5] = hi;
    slots[32 + (threadIdx.x >> 5)] = lo;
  }
  syncthreads();
  for (let w = 0; w < blockDim.x >> 5; w++) {
    const h = slots[w];
    const l = slots[32 + w];
    if (beats(largest, h, l, hi, lo)) {
      hi = h;
      lo = l;
    }
  }
  // Everyone has read the slots before a later call may overwrite them.
  syncthreads();
  key[0] = hi;
  key[1] = lo;
}

/**
 * The kk-th largest key of the row, into key[0] (high) and key[1] (low). The first and
 * the last (kk = 1: greedy; kk = vocab: sampling without top-k) take one pass; any other
 * a bitwise search, a pass per bit. The bitwise search for kk = 1 was the whole cost of
 * greedy decoding's argmax: 207 us a step over a 32,000-token vocabulary on an H100
 * (Nsight Compute), about 2.7% of a batch-1 decode step at the 7B shape.
 */
function kthLargestKey<T extends number>(row: GlobalIn<T>, base: i64, vocab: i32, kk: i32, scratch: Shared<i32>, slots: Shared<u32>, key: Local<u32>): void {
  if (kk <= 1 || kk >= vocab) {
    extremeKey(row, base, vocab, kk <= 1, slots, key);
    return;
  }
  let hi: u32 = 0;
  let lo: u32 = 0;
  for (let bit = 63; bit >= 0; bit--) {
    const tHi = bit >= 32 ? hi | (u32(1) << (bit - 32)) : hi;
    const tLo = bit < 32 ? lo | (u32(1) << bit) : lo;
    let n = 0;
    for (let i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (atLeast(logitKey(f32(row[base + i])), indexKey(i), tHi, tLo)) n++;
    }
    if (blockCount(n, scratch) >= kk) {
      hi = tHi;
      lo = tLo;
    }
  }
  key[0] = hi;
  key[1] = lo;
}

/** Sum of exp((logit - max) / temperature) over the keys >= floor and >= t. */
function massAbove<T extends number>(
  row: GlobalIn<T>,
  base: i64,
  vocab: i32,
  maxLogit: f32,
  invTemp: f32,
  floorHi: u32,
  floorLo: u32,
  tHi: u32,
  tLo: u32,
  scratch: Shared<f32>,
): f32 {
  let s: f32 = 0;
  for (let i = threadIdx.x; i < vocab; i += blockDim.x) {
    const x = f32(row[base + i]);
    const hi = logitKey(x);
    const lo = indexKey(i);
    if (atLeast(hi, lo, floorHi, floorLo) && atLeast(hi, lo, tHi, tLo)) s += Math.exp((x - maxLogit) * invTemp);
  }
  return blockSum(s, scratch);
}

/**
 * The largest key T whose mass(keys >= max(T, floor)) exceeds `limit` (reaches it when
 * not strict), into key[0..1]: greedy from the top bit, as mass only falls as T grows.
 * The caller ensures the whole set above the floor qualifies, so T >= floor.
 */
function massThreshold<T extends number>(
  row: GlobalIn<T>,
  base: i64,
  vocab: i32,
  maxLogit: f32,
  invTemp: f32,
  floorHi: u32,
  floorLo: u32,
  limit: f32,
  strict: bool,
  scratch: Shared<f32>,
  key: Local<u32>,
): void {
  let hi: u32 = 0;
  let lo: u32 = 0;
  for (let bit = 63; bit >= 0; bit--) {
    const tHi = bit >= 32 ? hi | (u32(1) << (bit - 32)) : hi;
    const tLo = bit < 32 ? lo | (u32(1) << bit) : lo;
    const mass = massAbove(row, base, vocab, maxLogit, invTemp, floorHi, floorLo, tHi, tLo, scratch);
    if (strict ? mass > limit : mass >= limit) {
      hi = tHi;
      lo = tLo;
    }
  }
  key[0] = hi;
  key[1] = lo;
}

export function argmax<T extends number>(_spec: LogitsSpec, logits: GlobalIn<T>, out: Global<i32>, rows: i32, vocab: i32): void {
  const row = blockIdx.x;
  if (row >= rows) return;
  const slots = shared<u32>(64);
  const key = local<u32>(2);
  extremeKey(logits, i64(row) * vocab, vocab, true, slots, key);
  if (threadIdx.x === 0) out[row] = i32(u32(0xffffffff) - key[1]);
}

export function sample<T extends number>(
  _spec: LogitsSpec,
  logits: GlobalIn<T>,
  uniforms: GlobalIn<f32>,
  out: Global<i32>,
  rows: i32,
  vocab: i32,
  temperature: f32,
  topK: i32,
  topP: f32,
): void {
  const row = blockIdx.x;
  if (row >= rows) return;
  const counts = shared<i32>(32);
  const sums = shared<f32>(32);
  const slots = shared<u32>(64);
  const base = i64(row) * vocab;
  const floor = local<u32>(2);
  // A temperature <= 0 means greedy decoding, as in the reference.
  const greedy = temperature <= 0;
  kthLargestKey(logits, base, vocab, greedy ? 1 : topK > 0 ? Math.min(topK, vocab) : vocab, counts, slots, floor);
  if (!greedy) {
    let m: f32 = -Infinity;
    for (let i = threadIdx.x; i < vocab; i += blockDim.x) m = Math.max(m, f32(logits[base + i]));
    const maxLogit = blockMax(m, sums);
    const invTemp = 1 / temperature;
    if (topP < 1) {
      const kept = massAbove(logits, base, vocab, maxLogit, invTemp, floor[0], floor[1], 0, 0, sums);
      massThreshold(logits, base, vocab, maxLogit, invTemp, floor[0], floor[1], topP * kept, false, sums, floor);
    }
    const mass = massAbove(logits, base, vocab, maxLogit, invTemp, floor[0], floor[1], 0, 0, sums);
    const target = uniforms[row] * mass;
    // The first key (in descending order) whose running mass exceeds the target; if
    // rounding leaves none, the last kept key, as the reference falls back to.
    if (mass > target) massThreshold(logits, base, vocab, maxLogit, invTemp, floor[0], floor[1], target, true, sums, floor);
  }
  if (threadIdx.x === 0) out[row] = i32(u32(0xffffffff) - floor[1]);
}

const common = {
  source: import.meta.url,
  types: (s: LogitsSpec) => ({ T: s.dtype }),
  blockThreads: () => THREADS,
  grid: () => [arg('rows'), 1, 1] as const,
  specs: (m: Matrix): LogitsSpec[] => [{ dtype: 'f32' }, ...m.dtype.map((dtype) => ({ dtype }))],
  unitKey: (s: LogitsSpec) => s.dtype,
};

export const argmaxKernel = defineKernel<LogitsSpec>({
  ...common,
  family: 'argmax',
  summary: 'index of the largest logit per row, lowest index on ties (Backend.argmax)',
  kernel: argmax,
  name: (s) => `argmax_${s.dtype}`,
});

export const sampleKernel = defineKernel<LogitsSpec>({
  ...common,
  family: 'sample',
  summary: 'temperature, top-k, top-p and inverse-CDF sampling with a caller uniform per row (Backend.sample)',
  kernel: sample,
  name: (s) => `sample_${s.dtype}`,
});
