import { ConfigError } from './errors.js';

export const POLICY_NAMES = ['full', 'streaming-llm', 'h2o', 'tova', 'quest', 'arkvale'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export const DIGEST_VARIANTS = ['cuboid-mean', 'cuboid-max', 'cuboid-center', 'sphere'] as const;
export type DigestVariant = (typeof DIGEST_VARIANTS)[number];

/** Which query heads share one page selection: all heads of a layer, or those of one KV head. */
export type SelectionScope = 'layer' | 'kv-head';

/** The shape of a model's KV cache. */
export interface KvGeometry {
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly pageSize: number;
  /** Bytes per stored element on the device (2 for f16/bf16, 4 for f32). */
  readonly bytesPerElement: number;
}

export type SelectOn = 'device' | 'host';

export interface CacheOptions {
  readonly policy: PolicyName;
  /** Resident KV tokens per (sequence, layer), rounded up to whole pages. Default 2048. */
  readonly budgetTokens?: number;
  /** Always-resident leading pages (ArkVale, Quest). Default 1. */
  readonly sinkPages?: number;
  /** Always-resident trailing pages, the partial page included. Default 2. */
  readonly windowPages?: number;
  /** Leading layers that keep every page. Default `defaultFullLayers`: numLayers / 16 (2 of 32, as in the paper), at least 1. */
  readonly fullLayers?: number;
  /** Pages chosen per step per selection group. Default min(40, budgetPages / 2) - sinks - window, at least 1. */
  readonly topK?: number;
  readonly digest?: DigestVariant;
  readonly selection?: SelectionScope;
  /**
   * Where ArkVale's decode steps select pages. 'device' (the default): estimates,
   * top-k, recall plans and page lists stay on the backend, with no read inside a
   * step. 'host': each layer's estimates are read and `policy.decide` runs on the host
   * (the specification; one synchronisation per layer).
   */
  readonly selectOn?: SelectOn;
  /** StreamingLLM's attention-sink tokens. Default 4. */
  readonly sinkTokens?: number;
  /** Device pool size in pages (shared by all layers and sequences). */
  readonly devicePages: number;
  /** Host pool size in pages (backups). Default: devicePages * 4. */
  readonly hostPages?: number;
}

/** Options with every default applied and checked. */
export interface ResolvedCacheOptions {
  readonly policy: PolicyName;
  readonly budgetPages: number;
  readonly sinkPages: number;
  readonly windowPages: number;
  readonly fullLayers: number;
  readonly topK: number;
  readonly digest: DigestVariant;
  readonly selection: SelectionScope;
  readonly selectOn: SelectOn;
  readonly sinkTokens: number;
  readonly devicePages: number;
  readonly hostPages: number;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function positiveInt(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

export function validateGeometry(g: KvGeometry): KvGeometry {
  positiveInt('numLayers', g.numLayers);
  positiveInt('numHeads', g.numHeads);
  positiveInt('numKvHeads', g.numKvHeads);
  positiveInt('headDim', g.headDim);
  positiveInt('bytesPerElement', g.bytesPerElement);
  if (g.numHeads % g.numKvHeads !== 0) {
    throw new ConfigError(`numHeads (${g.numHeads}) must be a multiple of numKvHeads (${g.numKvHeads})`);
  }
  if (!isPowerOfTwo(g.pageSize) || g.pageSize > 1024) {
    throw new ConfigError(`page size must be a power of two between 1 and 1024, got ${String(g.pageSize)}`);
  }
  return g;
}

/**
 * Leading layers that keep every page by default: 2 of 32 as in the paper
 * (numLayers / 16), and at least the first layer of a model with more than one.
 * The first layer's attention is broad rather than sparse, so a budget there costs
 * accuracy and saves little (the bundled 4-layer model loses the pass key at 30k
 * tokens with its first layer budgeted, and keeps it with that layer whole).
 */
export function defaultFullLayers(numLayers: number): number {
  return numLayers < 2 ? 0 : Math.max(1, Math.floor(numLayers / 16));
}

export function resolveCacheOptions(g: KvGeometry, o: CacheOptions): ResolvedCacheOptions {
  validateGeometry(g);
  if (!(POLICY_NAMES as readonly string[]).includes(o.policy)) {
    throw new ConfigError(`unknown policy "${String(o.policy)}"; expected one of: ${POLICY_NAMES.join(', ')}`);
  }
  const digest = o.digest ?? (o.policy === 'quest' ? 'cuboid-max' : 'cuboid-mean');
  if (!(DIGEST_VARIANTS as readonly string[]).includes(digest)) {
    throw new ConfigError(`unknown digest variant "${String(digest)}"; expected one of: ${DIGEST_VARIANTS.join(', ')}`);
  }
  const selection = o.selection ?? 'layer';
  if (selection !== 'layer' && selection !== 'kv-head') {
    throw new ConfigError(`selection must be "layer" or "kv-head", got "${String(selection)}"`);
  }
  const selectOn = o.selectOn ?? 'device';
  if (selectOn !== 'device' && selectOn !== 'host') {
    throw new ConfigError(`selectOn must be "device" or "host", got "${String(selectOn)}"`);
  }
  const budgetTokens = positiveInt('budget (tokens)', o.budgetTokens ?? 2048);
  const budgetPages = Math.ceil(budgetTokens / g.pageSize);
  const sinkPages = positiveInt('sinkPages', o.sinkPages ?? 1, 0);
  const windowPages = positiveInt('windowPages', o.windowPages ?? 2, 1);
  if (budgetPages < sinkPages + windowPages) {
    throw new ConfigError(
      `budget of ${budgetTokens} tokens (${budgetPages} pages of ${g.pageSize}) is smaller than ` + `sinks plus window (${sinkPages} + ${windowPages} pages)`,
    );
  }
  const fullLayers = positiveInt('fullLayers', o.fullLayers ?? defaultFullLayers(g.numLayers), 0);
  if (fullLayers > g.numLayers) {
    throw new ConfigError(`fullLayers (${fullLayers}) exceeds the model's ${g.numLayers} layers`);
  }
  const middle = budgetPages - sinkPages - windowPages;
  const defaultTopK = Math.max(1, Math.min(40, Math.floor(budgetPages / 2)) - sinkPages - windowPages);
  const topK = positiveInt('topK', o.topK ?? defaultTopK);
  const groups = selection === 'layer' ? 1 : g.numKvHeads;
  if (o.topK !== undefined && o.policy === 'arkvale' && middle > 0 && topK * groups > middle) {
    throw new ConfigError(`topK (${topK}) x ${groups} selection group(s) exceeds the ${middle} middle page(s) of the budget`);
  }
  const devicePages = positiveInt('devicePages', o.devicePages);
  const hostPages = positiveInt('hostPages', o.hostPages ?? devicePages * 4, 0);
  const sinkTokens = positiveInt('sinkTokens', o.sinkTokens ?? 4, 0);
  const tokenPolicy = o.policy === 'streaming-llm' || o.policy === 'h2o' || o.policy === 'tova';
  if (tokenPolicy && budgetPages * g.pageSize < 2) {
    throw new ConfigError(`${o.policy} needs a budget of at least 2 tokens (one is kept free for the incoming token)`);
  }
  if (o.policy === 'streaming-llm' && sinkTokens > budgetPages * g.pageSize - 2) {
    throw new ConfigError(`sinkTokens (${sinkTokens}) leaves no room for recent tokens in a budget of ${budgetPages * g.pageSize} tokens`);
  }
  return {
    policy: o.policy,
    budgetPages,
    sinkPages,
    windowPages,
    fullLayers,
    topK: middle > 0 ? Math.min(topK, Math.floor(middle / groups)) : 0,
    digest,
    selection,
    selectOn,
    sinkTokens,
    devicePages,
    hostPages,
  };
}

export function pageBytes(g: KvGeometry): number {
  return 2 * g.numKvHeads * g.pageSize * g.headDim * g.bytesPerElement;
}
