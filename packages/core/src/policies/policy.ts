import type { DigestVariant, PolicyName } from '../config.js';

/** What a page-level policy sees of one (sequence, layer) at one step. */
export interface PageStepContext {
  /** Logical pages of the sequence, the partially filled one included. */
  readonly numPages: number;
  /** Per logical page: true when it is in a device slot. */
  readonly resident: readonly boolean[];
  readonly budgetPages: number;
  readonly sinkPages: number;
  readonly windowPages: number;
  readonly topK: number;
  /** Selection groups of `scores` (1 = whole layer). */
  readonly groups: number;
  /** Pages that were scored (full pages with digests), ascending. */
  readonly candidates: readonly number[];
  /** [groups * candidates.length] estimates, group-major; empty when nothing was scored. */
  readonly scores: ArrayLike<number>;
}

/** A policy's decision for one step, as plain data. */
export interface PageDecision {
  /** Per attention group, the logical pages attended, ascending (so the partial page is last). */
  readonly attend: number[][];
  /** Pages to bring back from the host, each into the slot of `victim` (or a free slot when victim is -1). */
  readonly recalls: readonly { page: number; victim: number }[];
  /** Pages leaving the device this step (their backups are on the host). */
  readonly evictions: readonly number[];
}

/** Policies that keep KV in pages of consecutive tokens: Full, Quest, ArkVale. */
export interface PagePolicy {
  readonly kind: 'page';
  readonly name: PolicyName;
  /** Backs full pages up to the host and may recall them. */
  readonly recallable: boolean;
  /** Limits resident pages to the budget. */
  readonly budgeted: boolean;
  /** Digest variant of full pages, or null when the policy needs none. */
  readonly digest: DigestVariant | null;
  /** Selection groups for estimates: 1 per layer, numKvHeads, or numHeads (Quest). */
  selectionGroups(numHeads: number, numKvHeads: number): number;
  /** Attention groups: 1 (all heads share a page list) or `selectionGroups` (Quest's per-head lists). */
  attentionGroups(numHeads: number, numKvHeads: number): number;
  /** Which pages stay resident after a prompt longer than the budget (scores from the last prompt query). */
  prefillResident(ctx: PageStepContext): number[];
  /** One decoding step. */
  decide(ctx: PageStepContext): PageDecision;
  /**
   * When a new page starts and the layer is at budget, the page that gives up its
   * slot. Chosen on the host from lengths alone, so no device read is needed.
   */
  pageStartVictim(ctx: PageStepContext): number | null;
}

/** What a token-level eviction policy sees: the cells of a fixed-capacity cache. */
export interface TokenStepContext {
  /** Sequence position held by each cell (-1 when empty). */
  readonly positions: Int32Array;
  /** The policy's running score per cell (see `scoreUpdate`). */
  readonly scores: Float32Array;
  /** Cells in use. */
  readonly filled: number;
  /** Tokens the cache retains between steps. */
  readonly capacity: number;
}

/**
 * Eviction-without-recall baselines (StreamingLLM, H2O, TOVA). The cache is a fixed
 * set of budget pages whose cells hold tokens in any order (keys carry RoPE, so order
 * does not matter to attention); an evicted token's cell takes the next token, and
 * the evicted token never returns.
 */
export interface TokenPolicy {
  readonly kind: 'token';
  readonly name: PolicyName;
  /** Per-key statistic the prefill needs from causal attention. */
  readonly prefillScores: 'sum' | 'last' | null;
  /** How a step's attention probabilities update the cell scores. */
  readonly scoreUpdate: 'accumulate' | 'replace' | 'none';
  /** Positions (ascending) kept from a prompt of `length` tokens; keyScores per position. */
  prefillKeep(length: number, capacity: number, keyScores: ArrayLike<number> | null): number[];
  /** The cell to evict when the cache holds capacity + 1 tokens. */
  victim(ctx: TokenStepContext): number;
  /**
   * Present when `victim` is the rule a backend's `evictTokenCells` computes, so that
   * the policy can decide on the device: the lowest score among cells whose position is
   * not among the `recentKept(capacity)` most recent, ties to the lower position.
   * Absent (StreamingLLM, which reads no scores): the host decides.
   */
  readonly onDevice?: { readonly recentKept: (capacity: number) => number };
}

export type KvPolicy = PagePolicy | TokenPolicy;

/** Indices of the `n` largest values (ties to the lower index), ascending. */
export function topIndices(values: ArrayLike<number>, n: number, among?: readonly number[]): number[] {
  const at = among ? (i: number) => among[i] : (i: number) => i;
  const picked = firstInOrder(among ? among.length : values.length, n, (a, b) => values[at(b)] - values[at(a)] || at(a) - at(b));
  return picked.map(at).sort((a, b) => a - b);
}

export function range(start: number, end: number): number[] {
  // A plain loop: Array.from with a mapper is several times slower, and decode steps build thousands of these.
  const out = new Array<number>(Math.max(0, end - start));
  for (let i = 0; i < out.length; i++) out[i] = start + i;
  return out;
}

/**
 * The first `n` of 0..count-1 in the order `cmp` (negative: a first), in that order:
 * what sorting all of them and keeping `n` gives, with about count * log n comparisons
 * (and few insertions) instead of a full sort. A decode step plans every budgeted layer of every sequence (and Quest
 * every head), so this runs over about a thousand candidates a hundred times or more
 * per step at 30k tokens.
 */
export function firstInOrder(count: number, n: number, cmp: (a: number, b: number) => number): number[] {
  if (n <= 0) return [];
  const kept: number[] = [];
  for (let i = 0; i < count; i++) {
    if (kept.length === n && cmp(i, kept[n - 1]) >= 0) continue;
    // Binary search for the first kept element that i goes before.
    let lo = 0;
    let hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(i, kept[mid]) < 0) hi = mid;
      else lo = mid + 1;
    }
    kept.splice(lo, 0, i);
    if (kept.length > n) kept.pop();
  }
  return kept;
}
