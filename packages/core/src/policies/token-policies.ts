import type { TokenPolicy, TokenStepContext } from './policy.js';
import { range, topIndices } from './policy.js';

function lowestCell(ctx: TokenStepContext, eligible: (cell: number) => boolean, key: (cell: number) => number): number {
  let best = -1;
  for (let c = 0; c < ctx.filled; c++) {
    if (ctx.positions[c] < 0 || !eligible(c)) continue;
    if (best < 0 || key(c) < key(best) || (key(c) === key(best) && ctx.positions[c] < ctx.positions[best])) best = c;
  }
  return best;
}

/** The `n` most recent positions among the cells. */
function recentPositions(ctx: TokenStepContext, n: number): Set<number> {
  const pos = Array.from(ctx.positions.subarray(0, ctx.filled))
    .filter((p) => p >= 0)
    .sort((a, b) => b - a);
  return new Set(pos.slice(0, n));
}

/** StreamingLLM: the first `sinkTokens` tokens plus the most recent ones. */
export function streamingLlmPolicy(sinkTokens = 4): TokenPolicy {
  return {
    kind: 'token',
    name: 'streaming-llm',
    prefillScores: null,
    scoreUpdate: 'none',
    prefillKeep: (length, capacity) => (length <= capacity ? range(0, length) : [...range(0, sinkTokens), ...range(length - (capacity - sinkTokens), length)]),
    victim: (ctx) =>
      lowestCell(
        ctx,
        (c) => ctx.positions[c] >= sinkTokens,
        (c) => ctx.positions[c],
      ),
  };
}

/** H2O: half the budget for recent tokens, half for the largest accumulated attention. */
export function h2oPolicy(): TokenPolicy {
  const recentKept = (capacity: number) => Math.floor(capacity / 2);
  return {
    kind: 'token',
    name: 'h2o',
    prefillScores: 'sum',
    scoreUpdate: 'accumulate',
    prefillKeep: (length, capacity, scores) => {
      if (length <= capacity) return range(0, length);
      const recent = Math.floor(capacity / 2);
      const older = range(0, length - recent);
      const heavy = topIndices(scores ?? new Float32Array(length), capacity - recent, older);
      return [...heavy, ...range(length - recent, length)];
    },
    victim: (ctx) => {
      const recent = recentPositions(ctx, recentKept(ctx.capacity));
      return lowestCell(
        ctx,
        (c) => !recent.has(ctx.positions[c]),
        (c) => ctx.scores[c],
      );
    },
    onDevice: { recentKept },
  };
}

/** TOVA: keep the tokens the current query attends most; evict the lowest. */
export function tovaPolicy(): TokenPolicy {
  return {
    kind: 'token',
    name: 'tova',
    prefillScores: 'last',
    scoreUpdate: 'replace',
    prefillKeep: (length, capacity, scores) => (length <= capacity ? range(0, length) : topIndices(scores ?? new Float32Array(length), capacity)),
    victim: (ctx) =>
      lowestCell(
        ctx,
        () => true,
        (c) => ctx.scores[c],
      ),
    onDevice: { recentKept: () => 0 },
  };
}
