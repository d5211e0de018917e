import type { Backend, Tensor } from '@arkvale/core';

export interface RowSampling {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly uniform: () => number;
}

/**
 * One token per row of logits [B, V], as an i32 [B] tensor on the backend (nothing is
 * read). Greedy rows share one argmax; sampled rows each draw from their own seeded
 * stream (one uniform each, drawn now), so a row's token never depends on its batch.
 */
export function drawRows(backend: Backend, logits: Tensor, rows: readonly RowSampling[]): Tensor {
  const greedy = rows.some((r) => r.temperature === 0) ? backend.argmax(logits) : null;
  if (rows.every((r) => r.temperature === 0)) return greedy!;
  const v = logits.shape[1];
  const parts = rows.map((r, i) => {
    if (r.temperature === 0) return backend.sliceRows(greedy!, i, 1);
    const row = backend.reshape(backend.sliceRows(logits, i, 1), [1, v]);
    const u = backend.fromArray([r.uniform()], [1]);
    return backend.sample(row, { temperature: r.temperature, topK: r.topK, topP: r.topP }, u);
  });
  return backend.concatRows(parts);
}

/** `drawRows`, read: one read for the rows together. */
export function sampleRows(backend: Backend, logits: Tensor, rows: readonly RowSampling[]): number[] {
  return Array.from(backend.readSync(drawRows(backend, logits, rows)));
}
