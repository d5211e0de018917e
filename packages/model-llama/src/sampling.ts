import type { Backend, Tensor } from '@arkvale/core';
import { invalidArgument } from '@arkvale/core';

export { seededUniform } from '@arkvale/core';

export interface SamplingOptions {
  /** 0 (default) is greedy. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 (default) keeps all. */
  readonly topK?: number;
  /** Nucleus sampling mass; 1 (default) keeps all. */
  readonly topP?: number;
  /** Seed of the sampler's random numbers; the same seed gives the same tokens. */
  readonly seed?: number;
}

export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) throw invalidArgument(`temperature must be a number >= 0, got ${String(o.temperature)}`);
  if (!Number.isInteger(o.topK ?? 0) || (o.topK ?? 0) < 0) throw invalidArgument(`top-k must be an integer >= 0, got ${String(o.topK)}`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw invalidArgument(`top-p must be in (0, 1], got ${String(o.topP)}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw invalidArgument(`seed must be an integer, got ${String(o.seed)}`);
}


/** One token per row of `logits` [B, V], each row with its own options and random stream. */
export function sampleRows(backend: Backend, logits: Tensor, rows: readonly { options: SamplingOptions; uniform: () => number }[]): number[] {
  const greedy = rows.every((r) => (r.options.temperature ?? 0) === 0);
  if (greedy) return Array.from(backend.readSync(backend.argmax(logits)));
  const v = logits.shape[1];
  return rows.map((r, i) => {
    const row = backend.sliceRows(logits, i, 1);
    const params = { temperature: r.options.temperature ?? 0, topK: r.options.topK ?? 0, topP: r.options.topP ?? 1 };
    const u = backend.fromArray([r.uniform()], [1]);
    return backend.readSync(backend.sample(backend.reshape(row, [1, v]), params, u))[0];
  });
}
