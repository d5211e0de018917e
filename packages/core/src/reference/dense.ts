import type { RopeSpec, RopeTable, SamplingParams } from '../backend.js';
import { invalidArgument } from '../errors.js';
import { RefTensor, f32, rowSize } from './tensor.js';

/** x [M, K] @ w [N, K]^T -> [M, N], accumulated in float32 order-stable loops. */
export function matmul(x: RefTensor, w: RefTensor): RefTensor {
  const [m, k] = [x.shape[0], rowSize(x)];
  const [n, kw] = [w.shape[0], rowSize(w)];
  if (k !== kw) throw invalidArgument(`matmul: inner dimensions differ (${k} vs ${kw})`);
  const out = f32([m, n]);
  const a = x.f32,
    b = w.f32,
    o = out.f32;
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ai + p] * b[bj + p];
      o[i * n + j] = s;
    }
  }
  return out;
}

export function rmsNorm(x: RefTensor, weight: RefTensor, eps: number): RefTensor {
  const k = weight.data.length;
  if (rowSize(x) !== k) throw invalidArgument(`rmsNorm: row size ${rowSize(x)} != weight size ${k}`);
  const rows = x.data.length / k;
  const out = new RefTensor(new Float32Array(x.data.length), x.shape, 'f32');
  const a = x.f32,
    w = weight.f32,
    o = out.f32;
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < k; i++) ss += a[r * k + i] * a[r * k + i];
    const inv = 1 / Math.sqrt(ss / k + eps);
    for (let i = 0; i < k; i++) o[r * k + i] = a[r * k + i] * inv * w[i];
  }
  return out;
}

export class RefRopeTable implements RopeTable {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly headDim: number;
  readonly maxPositions: number;
  constructor(spec: RopeSpec) {
    const half = spec.headDim / 2;
    if (spec.invFreq.length !== half) throw invalidArgument(`rope: ${spec.invFreq.length} frequencies for head dim ${spec.headDim}`);
    this.headDim = spec.headDim;
    this.maxPositions = spec.maxPositions;
    const factor = spec.attentionFactor ?? 1;
    this.cos = new Float32Array(spec.maxPositions * half);
    this.sin = new Float32Array(spec.maxPositions * half);
    for (let p = 0; p < spec.maxPositions; p++) {
      for (let i = 0; i < half; i++) {
        // Angle in float32 as Hugging Face computes it (inv_freq and positions in f32).
        const angle = Math.fround(p * spec.invFreq[i]);
        this.cos[p * half + i] = Math.cos(angle) * factor;
        this.sin[p * half + i] = Math.sin(angle) * factor;
      }
    }
  }
}

/** Rotate-half RoPE of x [T, H, D] at i32 [T] positions: what ropeQkv applies to q and k. */
export function rope(x: RefTensor, positions: RefTensor, table: RefRopeTable): RefTensor {
  const [t, h, d] = x.shape;
  if (d !== table.headDim) throw invalidArgument(`rope: head dim ${d} != table's ${table.headDim}`);
  const half = d / 2;
  const out = new RefTensor(new Float32Array(x.data.length), x.shape, 'f32');
  const a = x.f32,
    o = out.f32,
    pos = positions.i32;
  for (let i = 0; i < t; i++) {
    const p = pos[i];
    if (p < 0 || p >= table.maxPositions) throw invalidArgument(`rope: position ${p} outside the table (0..${table.maxPositions - 1})`);
    for (let j = 0; j < h; j++) {
      const base = (i * h + j) * d;
      for (let e = 0; e < half; e++) {
        const c = table.cos[p * half + e],
          s = table.sin[p * half + e];
        const x1 = a[base + e],
          x2 = a[base + half + e];
        o[base + e] = x1 * c - x2 * s;
        o[base + half + e] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/** The column blocks of a 2-D tensor, each [rows, width]. */
export function splitColumns(x: RefTensor, widths: readonly number[]): RefTensor[] {
  const [rows, cols] = x.shape;
  if (x.shape.length !== 2 || widths.reduce((a, w) => a + w, 0) !== cols)
    throw invalidArgument(`splitColumns: [${x.shape.join(', ')}] is not ${widths.join(' + ')} columns wide`);
  let start = 0;
  return widths.map((w) => {
    const out = new RefTensor(new Float32Array(rows * w), [rows, w], x.dtype);
    for (let r = 0; r < rows; r++) out.f32.set(x.f32.subarray(r * cols + start, r * cols + start + w), r * w);
    start += w;
    return out;
  });
}

/** q [T, numHeads, D], k and v [T, numKvHeads, D] from qkv [T, (numHeads + 2 numKvHeads) * D]. */
export function splitQkv(qkv: RefTensor, numHeads: number, numKvHeads: number, headDim: number): [RefTensor, RefTensor, RefTensor] {
  const t = qkv.shape[0];
  const heads = [numHeads, numKvHeads, numKvHeads];
  if (qkv.shape.length !== 2 || qkv.shape[1] !== (numHeads + 2 * numKvHeads) * headDim) {
    throw invalidArgument(
      `ropeQkv: qkv must be [T, ${(numHeads + 2 * numKvHeads) * headDim}] for ${numHeads} + 2 x ${numKvHeads} heads of ${headDim}, got [${qkv.shape.join(', ')}]`,
    );
  }
  const [q, k, v] = splitColumns(
    qkv,
    heads.map((h) => h * headDim),
  ).map((part, i) => new RefTensor(part.data, [t, heads[i], headDim], part.dtype));
  return [q, k, v];
}

function sameShape(a: RefTensor, b: RefTensor, op: string): void {
  if (a.data.length !== b.data.length) throw invalidArgument(`${op}: shapes [${a.shape}] and [${b.shape}] differ`);
}

/** silu(gate) * up, elementwise: what siluGatePacked applies to the halves of each row. */
export function siluGate(gate: RefTensor, up: RefTensor): RefTensor {
  sameShape(gate, up, 'siluGate');
  const out = new RefTensor(new Float32Array(gate.data.length), gate.shape, 'f32');
  const g = gate.f32,
    u = up.f32,
    o = out.f32;
  for (let i = 0; i < g.length; i++) o[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return out;
}

export function add(a: RefTensor, b: RefTensor): RefTensor {
  sameShape(a, b, 'add');
  const out = new RefTensor(new Float32Array(a.data.length), a.shape, 'f32');
  const x = a.f32,
    y = b.f32,
    o = out.f32;
  for (let i = 0; i < x.length; i++) o[i] = x[i] + y[i];
  return out;
}

export function gatherRows(t: RefTensor, indices: RefTensor): RefTensor {
  const size = rowSize(t);
  const ids = indices.i32;
  const data = t.dtype === 'i32' ? new Int32Array(ids.length * size) : new Float32Array(ids.length * size);
  for (let i = 0; i < ids.length; i++) {
    const r = ids[i];
    if (r < 0 || r >= t.shape[0]) throw invalidArgument(`gatherRows: index ${r} outside 0..${t.shape[0] - 1}`);
    data.set(t.data.subarray(r * size, (r + 1) * size), i * size);
  }
  return new RefTensor(data, [ids.length, ...t.shape.slice(1)], t.dtype);
}

export function argmax(logits: RefTensor): RefTensor {
  const [b, v] = [logits.shape[0], rowSize(logits)];
  const out = new Int32Array(b);
  const l = logits.f32;
  for (let r = 0; r < b; r++) {
    let best = 0;
    for (let i = 1; i < v; i++) if (l[r * v + i] > l[r * v + best]) best = i;
    out[r] = best;
  }
  return new RefTensor(out, [b], 'i32');
}

/**
 * Temperature, then top-k, then top-p (nucleus) over the sorted distribution, and
 * inverse-CDF sampling with the caller's uniform number: same inputs, same token.
 */
export function sample(logits: RefTensor, params: SamplingParams, uniforms: RefTensor): RefTensor {
  if (params.temperature <= 0) return argmax(logits);
  const [b, v] = [logits.shape[0], rowSize(logits)];
  const out = new Int32Array(b);
  const l = logits.f32;
  for (let r = 0; r < b; r++) {
    const order = Array.from({ length: v }, (_, i) => i).sort((x, y) => l[r * v + y] - l[r * v + x] || x - y);
    const keep = params.topK > 0 ? Math.min(params.topK, v) : v;
    const maxLogit = l[r * v + order[0]];
    const probs: number[] = [];
    let total = 0;
    for (let i = 0; i < keep; i++) {
      const p = Math.exp((l[r * v + order[i]] - maxLogit) / params.temperature);
      probs.push(p);
      total += p;
    }
    let cut = keep;
    if (params.topP < 1) {
      let acc = 0;
      for (let i = 0; i < keep; i++) {
        acc += probs[i] / total;
        if (acc >= params.topP) {
          cut = i + 1;
          break;
        }
      }
    }
    let mass = 0;
    for (let i = 0; i < cut; i++) mass += probs[i];
    const target = uniforms.f32[r] * mass;
    let acc = 0;
    let chosen = order[cut - 1];
    for (let i = 0; i < cut; i++) {
      acc += probs[i];
      if (target < acc) {
        chosen = order[i];
        break;
      }
    }
    out[r] = chosen;
  }
  return new RefTensor(out, [b], 'i32');
}
