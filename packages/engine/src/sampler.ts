import type { Backend, Tensor } from '@arkvale/core';

export interface RowSampling {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly uniform: () => number;
}

/**
 * One token per row of logits [B, V]. Greedy rows share one argmax; sampled rows each
 * draw from their own seeded stream, so a row's token never depends on its batch.
 */
export function sampleRows(backend: Backend, logits: Tensor, rows: readonly RowSampling[]): number[] {
  const greedy = rows.some((r) => r.temperature === 0) ? backend.readSync(backend.argmax(logits)) : null;
  const v = logits.shape[1];
  return rows.map((r, i) => {
    if (r.temperature === 0) return greedy![i];
    const row = backend.reshape(backend.sliceRows(logits, i, 1), [1, v]);
    const u = backend.fromArray([r.uniform()], [1]);
    return backend.readSync(backend.sample(row, { temperature: r.temperature, topK: r.topK, topP: r.topP }, u))[0];
  });
}
