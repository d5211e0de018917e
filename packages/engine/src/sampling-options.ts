import { invalidArgument } from '@arkvale/core';

/** How a request's tokens are drawn. */
export interface SamplingOptions {
  /** 0 (default) is greedy. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 (default) keeps all. */
  readonly topK?: number;
  /** Nucleus sampling mass; 1 (default) keeps all. */
  readonly topP?: number;
  /** Seed of the request's random stream; the same seed gives the same tokens, whatever else runs. Default 0. */
  readonly seed?: number;
}

/** Throws INVALID_ARGUMENT naming the first option out of range. */
export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) throw invalidArgument(`temperature must be a number >= 0, got ${String(o.temperature)}`);
  if (!Number.isInteger(o.topK ?? 0) || (o.topK ?? 0) < 0) throw invalidArgument(`top-k must be an integer >= 0, got ${String(o.topK)}`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw invalidArgument(`top-p must be in (0, 1], got ${String(o.topP)}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw invalidArgument(`seed must be an integer, got ${String(o.seed)}`);
}
