import { KV_DTYPES, type Backend, type CacheOptions, type KvDtype, type PolicyName } from '@arkvale/core';

/**
 * How the engine runs: pages, pools, the default KV plan, and the scheduler's limits.
 * The plan's tuning fields (sinks, window, full layers, top-k, digest, selection) are
 * core's cache options, with core's defaults.
 */
export interface EngineConfig extends Pick<CacheOptions, 'sinkPages' | 'windowPages' | 'fullLayers' | 'topK' | 'digest' | 'selection'> {
  /** Tokens per KV page. Default 16. */
  readonly pageSize?: number;
  /**
   * How KV pages store K and V, for every plan (they share one page store): 'auto', in
   * the backend's dtype; 'fp8', e4m3 codes with a scale byte per token and KV head
   * (about half the bytes of f16 pages; the reference and CPU backends only, for now).
   * Default 'auto'.
   */
  readonly kvDtype?: KvDtype;
  /** Device pool, in pages of one layer, shared by every sequence and plan (default: planned, below). */
  readonly devicePages?: number;
  /**
   * Host pool (backups, parked sequences). The engines plan both pools from the
   * hardware when they are not given (planPools): the device pool on a GPU is every page
   * the memory share leaves (4096 on the CPU); the host pool four times the device pool,
   * on a GPU at most half the machine's memory.
   */
  readonly hostPages?: number;
  /** KV policy and budget of requests that name none. Default arkvale @ 512. */
  readonly policy?: PolicyName;
  readonly budgetTokens?: number;
  /** Prompt tokens per prefill chunk; chunk boundaries are multiples of it, whatever else runs. Default 256. */
  readonly chunkTokens?: number;
  /** Prefill rows per step at most (at least one chunk runs). Default 512. */
  readonly stepTokens?: number;
  /** Requests waiting for admission at most; more are refused with queue_full. Default 1024. */
  readonly maxWaiting?: number;
  /** Sequences admitted (prefilling, decoding) at most. Default 256. */
  readonly maxRunning?: number;
  /**
   * Decode rows per matrix product, for batch invariance (a request's tokens do not
   * depend on its batch; docs/DESIGN.md). Default: the backend's (Backend.invariantProducts):
   * 8 on the CPU (whose kernel switches at 16 rows), 64 on CUDA, where every product
   * of a block is also run at exactly 64 rows (padded), so cuBLAS picks one algorithm
   * for every batch and a batch of up to 64 reads each weight once. 0: one product for
   * all rows (fastest, not batch-invariant).
   */
  readonly decodeBlockRows?: number;
  /**
   * How prompts are written. `chunked`: in chunks of `chunkTokens`, between decode
   * steps of other sequences; every layer holds the whole prompt until its last chunk.
   * `one-shot`: a prompt in one pass (its step waits for nothing else), each layer
   * keeping only its budget once written: the least device memory for a prompt far over
   * the budget, what a batch run offline wants. A prompt that starts from the prefix
   * cache prefills its rest in chunks either way. Default: the backend's (one-shot on
   * CUDA, whose paged attention runs a chunk's rows on CUDA cores; chunked elsewhere).
   */
  readonly prefill?: 'chunked' | 'one-shot';
  /**
   * Keep the pages of finished requests for prompts that start with the same tokens
   * (multi-turn chat, one document with many questions): those tokens are not
   * prefilled again (see KvCache's prefix cache). A request opts out with
   * `cachePrefix: false`. Default true.
   */
  readonly prefixCache?: boolean;
  /**
   * Run decode steps one step ahead of their tokens' delivery: a step's tokens (argmax
   * or seeded samples) stay on the device, the next step of the same sequences reads
   * them there and is issued at once, and the host delivers the tokens (stop checks,
   * text, events) while the device runs it. A request that ends on a token has had one
   * more row computed, which is dropped. Steps with grammars, logprobs, suffix tokens
   * or prefill chunks wait for their tokens as before. Default: on where the backend
   * replays decode steps as graphs (CUDA), off on host backends (nothing to overlap).
   */
  readonly overlapSteps?: boolean;
}

export type ResolvedEngineConfig = Required<
  Omit<EngineConfig, 'sinkPages' | 'windowPages' | 'fullLayers' | 'topK' | 'digest' | 'selection' | 'decodeBlockRows' | 'prefill' | 'overlapSteps'>
> &
  Pick<EngineConfig, 'sinkPages' | 'windowPages' | 'fullLayers' | 'topK' | 'digest' | 'selection'> & {
    /** null: the backend's (EngineCore resolves it). */
    readonly decodeBlockRows: number | null;
    readonly prefill: 'chunked' | 'one-shot' | null;
    /** null: the backend's (EngineCore resolves it). */
    readonly overlapSteps: boolean | null;
  };

export function resolveEngineConfig(c: EngineConfig = {}): ResolvedEngineConfig {
  const devicePages = c.devicePages ?? 4096;
  // Only the engine's own fields: callers pass wider option objects (callbacks
  // included), and the config travels to the worker thread by structured clone.
  const r = {
    sinkPages: c.sinkPages,
    windowPages: c.windowPages,
    fullLayers: c.fullLayers,
    topK: c.topK,
    digest: c.digest,
    selection: c.selection,
    pageSize: c.pageSize ?? 16,
    kvDtype: c.kvDtype ?? 'auto',
    devicePages,
    hostPages: c.hostPages ?? devicePages * 4,
    policy: c.policy ?? 'arkvale',
    budgetTokens: c.budgetTokens ?? 512,
    chunkTokens: c.chunkTokens ?? 256,
    stepTokens: c.stepTokens ?? 512,
    maxWaiting: c.maxWaiting ?? 1024,
    maxRunning: c.maxRunning ?? 256,
    // null: the backend's (resolved by the engine core, which knows the backend).
    decodeBlockRows: c.decodeBlockRows ?? null,
    // null: the backend's (chunked, or one-shot where Backend.prefersOneShotPrefill).
    prefill: c.prefill ?? null,
    prefixCache: c.prefixCache ?? true,
    // null: the backend's (EngineCore resolves it).
    overlapSteps: c.overlapSteps ?? null,
  };
  if (!(KV_DTYPES as readonly string[]).includes(r.kvDtype))
    throw new RangeError(`engine option kvDtype must be one of ${KV_DTYPES.map((d) => `"${d}"`).join(', ')}, got ${String(r.kvDtype)}`);
  if (r.prefill !== null && r.prefill !== 'chunked' && r.prefill !== 'one-shot')
    throw new RangeError(`engine option prefill must be "chunked" or "one-shot", got ${String(r.prefill)}`);
  for (const key of ['pageSize', 'devicePages', 'budgetTokens', 'chunkTokens', 'stepTokens', 'maxRunning'] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 1) throw new RangeError(`engine option ${key} must be an integer >= 1, got ${String(r[key])}`);
  }
  for (const key of ['hostPages', 'maxWaiting'] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 0) throw new RangeError(`engine option ${key} must be an integer >= 0, got ${String(r[key])}`);
  }
  if (r.overlapSteps !== null && typeof r.overlapSteps !== 'boolean')
    throw new RangeError(`engine option overlapSteps must be true or false, got ${String(r.overlapSteps)}`);
  if (r.decodeBlockRows !== null && (!Number.isInteger(r.decodeBlockRows) || r.decodeBlockRows < 0)) {
    throw new RangeError(`engine option decodeBlockRows must be an integer >= 0, got ${String(r.decodeBlockRows)}`);
  }
  return r;
}

/** Whether an engine prefills each prompt in one pass: as configured, else as its backend prefers (Backend.prefersOneShotPrefill). */
export function prefillsOneShot(config: Pick<ResolvedEngineConfig, 'prefill'>, backend: Backend): boolean {
  return (config.prefill ?? (backend.prefersOneShotPrefill ? 'one-shot' : 'chunked')) === 'one-shot';
}
