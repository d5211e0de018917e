import type { DigestVariant } from './config.js';

/**
 * Digest of one page for one KV head from its keys (tokens x dim, row-major), written
 * as two rows of `dim`: for the cuboid variants the box's upper and lower corners,
 * for the sphere its centre and (in element 0 of the second row) its radius.
 */
export function computeDigest(keys: Float32Array, tokens: number, dim: number, variant: DigestVariant, out: Float32Array, outOffset: number): void {
  for (let d = 0; d < dim; d++) {
    let max = -Infinity;
    let min = Infinity;
    for (let t = 0; t < tokens; t++) {
      const x = keys[t * dim + d];
      if (x > max) max = x;
      if (x < min) min = x;
    }
    const c = (max + min) / 2;
    let upper = max;
    let lower = min;
    if (variant === 'cuboid-mean') {
      let r = 0;
      for (let t = 0; t < tokens; t++) r += Math.abs(keys[t * dim + d] - c);
      r /= tokens;
      upper = c + r;
      lower = c - r;
    } else if (variant === 'cuboid-center' || variant === 'sphere') {
      upper = c;
      lower = c;
    }
    out[outOffset + d] = upper;
    out[outOffset + dim + d] = variant === 'sphere' ? 0 : lower;
  }
  if (variant === 'sphere') {
    let radius = 0;
    for (let t = 0; t < tokens; t++) {
      let dist = 0;
      for (let d = 0; d < dim; d++) {
        const e = keys[t * dim + d] - out[outOffset + d];
        dist += e * e;
      }
      radius = Math.max(radius, Math.sqrt(dist));
    }
    out[outOffset + dim] = radius;
  }
}

/**
 * Upper-bound estimate of q . k for keys in the digest: for boxes
 * sum_i max(q_i * upper_i, q_i * lower_i); for the sphere q . c + |q| r.
 */
export function estimateScore(q: Float32Array, qOffset: number, digest: Float32Array, dOffset: number, dim: number, variant: DigestVariant): number {
  let s = 0;
  if (variant === 'sphere') {
    let norm = 0;
    for (let i = 0; i < dim; i++) {
      const qi = q[qOffset + i];
      s += qi * digest[dOffset + i];
      norm += qi * qi;
    }
    return s + Math.sqrt(norm) * digest[dOffset + dim];
  }
  for (let i = 0; i < dim; i++) {
    const qi = q[qOffset + i];
    const a = qi * digest[dOffset + i];
    const b = qi * digest[dOffset + dim + i];
    s += a > b ? a : b;
  }
  return s;
}
