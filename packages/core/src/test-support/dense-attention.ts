/**
 * Attention of one query over explicit key/value rows in float64: an independent
 * oracle for tests (no pages, no backend).
 */
export function denseAttention(q: ArrayLike<number>, keys: ArrayLike<number>[], values: ArrayLike<number>[], scale: number): number[] {
  const logits = keys.map((k) => scale * Array.from(k).reduce((s, x, i) => s + x * q[i], 0));
  const max = Math.max(...logits);
  const w = logits.map((l) => Math.exp(l - max));
  const total = w.reduce((a, b) => a + b, 0);
  return Array.from(values[0], (_, d) => values.reduce((s, v, j) => s + (w[j] / total) * v[d], 0));
}
