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
  /**
   * Bytes per element of the backend's dtype (2 for f16/bf16, 4 for f32): of KV pages
   * unless `kvDtype` says otherwise, and always of digests and activations.
   */
  readonly bytesPerElement: number;
  /**
   * How pages store K and V. Absent: in the backend's dtype (`bytesPerElement`).
   * 'fp8': e4m3 codes with one power-of-two scale byte per token, KV head and K|V,
   * inside the page slot (see `pageBytes` and kv-fp8.ts); attention, digests and
   * token scores read them dequantized. Digests stay in the backend's dtype.
   */
  readonly kvDtype?: 'fp8';
}

/** What `--kv-dtype` and the `kvDtype` options take: 'auto' keeps pages in the backend's dtype. */
export const KV_DTYPES = ['auto', 'fp8'] as const;
export type KvDtype = (typeof KV_DTYPES)[number];

/** The geometry's `kvDtype` for a `--kv-dtype` choice (undefined for 'auto' or none); anything else is a ConfigError naming `what`. */
export function geometryKvDtype(choice: string | undefined, what = 'kvDtype'): KvGeometry['kvDtype'] {
  if (choice === undefined || choice === 'auto') return undefined;
  if (choice === 'fp8') return 'fp8';
  throw new ConfigError(`${what} must be one of: ${KV_DTYPES.join(', ')}; got "${String(choice)}"`);
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
   * Where decode steps decide. 'device' (the default): ArkVale's and Quest's estimates,
   * top-k, recall plans and page lists, and H2O's and TOVA's cell scores and victims,
   * stay on the backend, with no read inside a step (where the backend has the
   * operations). 'host': each layer's estimates or token scores are read and the
   * policy (`decide`, `victim`) runs on the host (the specification; one
   * synchronisation per layer).
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
  if (g.kvDtype !== undefined && g.kvDtype !== 'fp8') {
    throw new ConfigError(`kvDtype must be "fp8" or absent (pages in the backend's dtype), got "${String(g.kvDtype)}"`);
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

const align16 = (n: number): number => Math.ceil(n / 16) * 16;

/**
 * Byte offset of the scale bytes inside an fp8 page slot: after its 2 * kvHeads *
 * pageSize * headDim e4m3 codes, rounded up to 16 bytes.
 */
export function fp8ScaleOffset(g: KvGeometry): number {
  return align16(2 * g.numKvHeads * g.pageSize * g.headDim);
}

/**
 * Bytes of one page slot (one layer's K and V of every KV head for `pageSize` tokens).
 * In the backend's dtype: [K|V][kvHead][token][dim] elements. fp8: the same layout in
 * e4m3 codes (1 byte each), then [K|V][kvHead][token] scale bytes at
 * `fp8ScaleOffset`, the slot padded to 16 bytes, so a page copy moves its scales too.
 */
export function pageBytes(g: KvGeometry): number {
  if (g.kvDtype === 'fp8') return align16(fp8ScaleOffset(g) + 2 * g.numKvHeads * g.pageSize);
  return 2 * g.numKvHeads * g.pageSize * g.headDim * g.bytesPerElement;
}

/** Page bytes of K and V of one token in one layer, scales included (without the slot's padding). */
export function kvBytesPerToken(g: KvGeometry): number {
  if (g.kvDtype === 'fp8') return 2 * g.numKvHeads * (g.headDim + 1);
  return 2 * g.numKvHeads * g.headDim * g.bytesPerElement;
}
