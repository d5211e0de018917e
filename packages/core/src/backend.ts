import type { DigestVariant, KvGeometry } from './config.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i32';

/**
 * A backend-owned tensor. Its data lives wherever the backend keeps it (JS memory,
 * GPU memory); only `Backend.read`, `readSync` and `readLater` bring it to the host.
 */
export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

export type PoolLocation = 'device' | 'host';

/** Storage of a page pool: [slot][K|V][kvHead][token][dim]. */
export interface KvStorage {
  readonly location: PoolLocation;
  readonly slots: number;
  readonly geometry: KvGeometry;
}

/** One digest row per full page: [row][kvHead][2][dim] (box max/min, or sphere centre/radius). */
export interface DigestStorage {
  readonly rows: number;
  readonly geometry: KvGeometry;
}

/** Completion of an asynchronous page copy; `Backend.awaitCopy` orders later work after it. */
export interface CopyTicket {
  readonly id: number;
}

/** Precomputed RoPE cos/sin per position (model-specific scaling already applied). */
export interface RopeTable {
  readonly headDim: number;
  readonly maxPositions: number;
}

export interface RopeSpec {
  readonly headDim: number;
  readonly maxPositions: number;
  /** Inverse frequencies (headDim / 2 of them), scaling applied by the model package. */
  readonly invFreq: Float32Array;
  /** Multiplier of cos/sin (LLaMA 3.1-style attention factor); 1 by default. */
  readonly attentionFactor?: number;
}

export interface PagedAttentionArgs {
  /** Queries [B, numHeads, headDim]. */
  readonly q: Tensor;
  readonly storage: KvStorage;
  /**
   * Page lists, i32 [B, G, maxPages]: device slots each (batch row, selection group)
   * attends, in order, with the partially filled page (if any) last. G is 1 or numHeads
   * (Quest: one list per query head) or numKvHeads.
   */
  readonly pageTable: Tensor;
  /** Pages used in each list, i32 [B, G]. */
  readonly pageCounts: Tensor;
  /** Valid tokens of the last listed page of each list, i32 [B, G] (1..pageSize). */
  readonly lastPageLens: Tensor;
  readonly scale: number;
  /**
   * When set, also returns the attention probability of every listed token averaged
   * over the query heads of the list's group: f32 [B, G, maxPages * pageSize].
   * Token-level policies (H2O, TOVA) need it.
   */
  readonly returnTokenScores?: boolean;
}

export interface ChunkAttentionArgs {
  /** Queries [count, numHeads, headDim] of one sequence's tokens at positions start .. start + count - 1. */
  readonly q: Tensor;
  readonly storage: KvStorage;
  /** The sequence's device slots in order, i32 [pages], covering positions 0 .. start + count - 1 (their K/V already appended). */
  readonly pageSlots: Tensor;
  readonly start: number;
  readonly scale: number;
}

export interface CausalAttentionArgs {
  /** [T, numHeads, headDim], [T, numKvHeads, headDim] x2, keys already rotated. */
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly scale: number;
  /**
   * Per-key attention statistics averaged over heads, f32 [T]: `sum` adds every
   * query's probabilities (H2O's accumulated attention), `last` is the last query's
   * (TOVA, and ArkVale's prefill selection).
   */
  readonly keyScores?: 'sum' | 'last';
}

export interface SamplingParams {
  readonly temperature: number;
  /** 0 disables. */
  readonly topK: number;
  /** 1 disables. */
  readonly topP: number;
}

/**
 * Device-resident page tables of the budgeted layers a decode step selects on the
 * device: an i32 tensor [rows, 3, pagesPerRow] holding, per (row, logical page), the
 * device slot (-1 when only the host backup exists), the digest row and the host
 * slot (-1 when none). A row belongs to one (sequence, layer).
 */
export const PAGE_TABLE_FIELDS = { slot: 0, digest: 1, host: 2 } as const;

/** Columns of `SelectResidentArgs.rows`, one row per batch row. */
export const SELECT_ROW_FIELDS = { tableRow: 0, numPages: 1, firstCandidate: 2, candidates: 3, lastPageLen: 4 } as const;

/** What a selection on the device reads: each row's candidate pages, scored from the digests by the queries. */
export interface PageSelectionArgs {
  /** Queries [B, numHeads, D]. */
  readonly q: Tensor;
  readonly digests: DigestStorage;
  readonly variant: DigestVariant;
  /** Selection groups: estimates averaged over numHeads / groups consecutive heads. */
  readonly groups: number;
  /** Page tables (see PAGE_TABLE_FIELDS). */
  readonly tables: Tensor;
  /**
   * i32 [B, 5] (SELECT_ROW_FIELDS): table row, logical pages, first candidate page,
   * candidates (consecutive pages; 0 = nothing to select, every resident page is
   * attended), valid tokens of the last page.
   */
  readonly rows: Tensor;
  /** Candidates each group chooses. */
  readonly k: number;
  /** The most candidates of any row. */
  readonly maxCandidates: number;
  /** Width of the page lists: the most pages any list holds. */
  readonly maxPages: number;
}

/** Paged attention's lists, as a selection on the device leaves them. */
export interface PageLists {
  /** i32 [B, lists, maxPages]: slots ascending by page. */
  readonly pageTable: Tensor;
  readonly pageCounts: Tensor;
  readonly lastPageLens: Tensor;
}

/**
 * ArkVale's whole selection for a batch, without a host round trip: estimates of each
 * row's candidate pages, the top k with recall planning (exactly `planPageSelection`
 * with no free slots: every recall takes the slot of a victim), the plan applied to
 * the page tables (updated in place), and the attention page lists built from them
 * (one list a row, of its resident pages).
 */
export interface SelectResidentArgs extends PageSelectionArgs {
  /**
   * Where the plan goes: rows [row, row + B) of this i32 [R, 1 + 2kG] tensor (a step
   * gathers every layer's plans in one tensor and reads them back once). A new tensor
   * by default.
   */
  readonly planInto?: { readonly tensor: Tensor; readonly row: number };
}

export interface SelectResidentResult extends PageLists {
  /** i32 [B, 1 + 2kG] (G selection groups, each choosing k): n, then (host slot, device slot) of each recall; what `recallListed` copies. */
  readonly copies: Tensor;
  /** i32 [B, 1 + 2kG]: n, then (page, victim page) of each recall, best first; what the host's view replays. With `planInto`, that tensor (whole). */
  readonly plan: Tensor;
}

/**
 * Quest's selection for a batch, without a host round trip: per (batch row, selection
 * group), every page that is not a candidate plus the top k candidates by the group's
 * estimate (higher first, ties to the lower page), listed in page order through the
 * page tables' slots (lists padded with -1). The tables are only read (nothing moves).
 * A row's last page must not be a candidate (its valid tokens are the row's
 * lastPageLen), and candidates 0 lists every page; a list holds numPages - candidates
 * + min(k, candidates) pages.
 */
export type SelectAttendArgs = PageSelectionArgs;
export type SelectAttendResult = PageLists;

/**
 * Where the fields of a token-cell table row lie (see `tokenTableLayout`): the free cell
 * (-1: none), then the device slot of each of the row's pages (cell c lives in page
 * c / pageSize at offset c % pageSize; -1 past the pages it has), then each cell's
 * sequence position (-1: free or unused), then each cell's score as the bits of an f32.
 */
export interface TokenTableLayout {
  readonly cells: number;
  readonly free: number;
  readonly slots: number;
  readonly positions: number;
  readonly scores: number;
  readonly width: number;
}

/**
 * The layout of the token-cell tables of token-level layers that decide on the device
 * (H2O, TOVA): i32 [rows, width], one row per (sequence, layer) of `pages` pages of
 * `pageSize` cells. Scores are stored as f32 bits so that one i32 tensor holds a row
 * (the host writes it with `scatterI32`, and it grows by `concatRows`).
 */
export function tokenTableLayout(pages: number, pageSize: number): TokenTableLayout {
  const cells = pages * pageSize;
  return { cells, free: 0, slots: 1, positions: 1 + pages, scores: 1 + pages + cells, width: 1 + pages + 2 * cells };
}

/** Columns of `TokenCellArgs.rows`, one row per batch row. */
export const TOKEN_ROW_FIELDS = { tableRow: 0, position: 1, filled: 2 } as const;

/** What both token-cell operations read: the tables and each batch row's place in them. */
export interface TokenCellArgs {
  /** Token-cell tables, i32 [rows, tokenTableLayout(pages, pageSize).width]; updated in place. */
  readonly tables: Tensor;
  readonly pages: number;
  readonly pageSize: number;
  /**
   * i32 [B, 3] (TOKEN_ROW_FIELDS): the table row (distinct for every batch row), the
   * position of the step's new token, and the cells in use with that token placed.
   */
  readonly rows: Tensor;
}

/**
 * Where a decode step's token goes in token-level layers deciding on the device: each
 * batch row whose table row holds a free cell (the victim of its last step) gets that
 * cell's (slot, offset) written into the step's append targets, and the cell takes the
 * token (its position; score 0; the row has no free cell any more). Other rows (still
 * filling their cells, placed by the host) keep the targets they have.
 */
export interface PlaceTokenCellsArgs extends TokenCellArgs {
  /** The step's append targets, i32 [B] each, as `appendKv` reads them. */
  readonly slots: Tensor;
  readonly offsets: Tensor;
}

/**
 * A token-level layer's eviction after a decode step's attention, exactly as the
 * policy's `victim` on the host: the scores of the cells in use updated from the
 * attention's (added for 'accumulate', H2O; taken for 'replace', TOVA), and in each
 * row whose every cell is in use (filled = cells), the victim: the lowest score among
 * cells whose position is not among the `recentKept` most recent, ties to the lower
 * position. It is marked free (position -1, score 0) for `placeTokenCells` of the next
 * step.
 */
export interface EvictTokenCellsArgs extends TokenCellArgs {
  /** f32 [B, G, width] as `pagedAttention` returns them: each row's list 0 holds its cells in order. */
  readonly tokenScores: Tensor;
  readonly update: 'accumulate' | 'replace';
  readonly recentKept: number;
  /** Where the victims go: elements [row, row + B) of this i32 [R] tensor (a step gathers every layer's and reads them once). A new tensor by default. */
  readonly victimsInto?: { readonly tensor: Tensor; readonly row: number };
}

/** A read begun by `readLater`. */
export interface PendingRead {
  /** The tensor as it was when the read began; waits (a counted synchronisation on a GPU) only if the device is not there yet. */
  get(): Float32Array | Int32Array;
  /** Whether `get` would return without waiting. Absent: it would (a host backend copied at once). */
  ready?(): boolean;
}

/**
 * Everything a LLaMA forward pass and the KV policies need. All tensors are
 * backend-owned handles; nothing here copies device memory to the host except the
 * reads (`read`, `readSync`, `readLater`), so a GPU backend can keep page tables,
 * scores, top-k and recall plans on the device.
 *
 * Shape conventions: activations are row-major [rows, features]; weights follow
 * Hugging Face's [out, in] layout, so `matmul(x, w)` computes x @ w^T.
 */
/**
 * A decode step in parts (Backend.graphStep). `prelude` runs for every step: the host's
 * bookkeeping and the step's inputs, whose backend calls come first and repeat under a
 * key. `body` is the rest, the forward pass. A backend that replays the step without
 * running the body calls `skipped` instead, which does what the body leaves the host to
 * do (start reading the step's decisions back, free the prelude's tensors).
 */
export interface GraphedStep<P> {
  prelude(): P;
  body(prelude: P): Tensor;
  /** Absent: this step's body must run (it changes what the host knows beyond what `skipped` could redo). */
  skipped?(prelude: P): void;
}

/** A graphed step run as it is: its prelude, then its body, in one tidy scope (what the prelude made is freed if the body throws). */
export function runGraphedStep<P>(backend: Backend, step: GraphedStep<P>): Tensor {
  return backend.tidy(() => step.body(step.prelude()));
}

/** `Backend.fromStepValues`, or a plain upload of the values now where the backend has none. */
export function stepValues(backend: Backend, values: () => Int32Array, shape: readonly number[]): Tensor {
  return backend.fromStepValues ? backend.fromStepValues(values, shape) : backend.fromArray(values(), shape, 'i32');
}

export interface Backend {
  readonly name: string;
  /**
   * The floating-point type activations, weights and KV pages are stored in: 'f32' on
   * the reference and CPU backends, the 'f16' or 'bf16' a GPU backend was created with.
   * KV page sizes follow from it.
   */
  readonly dtype: 'f32' | 'f16' | 'bf16';
  /**
   * How this backend's matrix products give a row the numbers it gets alone, whatever
   * else shares the product (batch invariance; docs/DESIGN.md): products of at most
   * `rows` rows do, and when `pad` only products of exactly `rows` rows (the kernel is
   * chosen by the product's shape, so every product of a block is run at that shape).
   * Absent: per-row results never depend on the product (the reference backend).
   */
  readonly invariantProducts?: { readonly rows: number; readonly pad: boolean };
  /**
   * True where prompts are best prefilled whole (`KvCache.admit`, `causalAttention`)
   * rather than in chunks (`pagedAttention` with a page list per row): on the CUDA
   * backend the paged kernel is built for one query per sequence and runs a chunk's rows
   * on CUDA cores, far slower than the tensor-core causal prefill. Engines default to
   * one-shot prefill here.
   */
  readonly prefersOneShotPrefill?: boolean;
  /**
   * Returns memory the backend keeps for reuse but no tensor holds (buffer pools,
   * recorded step graphs, its allocator's free blocks) to the device, e.g. after a
   * model is disposed, so that another can load. Only backends with memory of their own have it.
   */
  releaseCached?(): void;

  /**
   * Runs `fn` and then disposes every tensor created while it ran, except those it
   * returns (a tensor, or an array or plain object of tensors), which pass to the
   * enclosing scope; if `fn` throws, all of them. Nests. Backends whose memory is
   * garbage collected just run `fn`; a GPU backend frees device memory here, since a
   * synchronous decode loop gives finalizers no chance.
   */
  tidy<T>(fn: () => T): T;
  /** Takes `t` out of every tidy scope: it lives until disposed (state kept across calls). Returns `t`. */
  keep<T extends Tensor>(t: T): T;
  /**
   * Device memory now, free and total bytes; free includes what the backend's allocator
   * caches but no tensor uses. Only backends with memory of their own have it.
   */
  memory?(): { readonly freeBytes: number; readonly totalBytes: number };
  /**
   * Runs one decode step (GraphedStep: its prelude, then its body, which returns the
   * logits) inside a tidy scope, in a way the backend may replay: steps under the same
   * `key` are meant to issue the same work on other data (KvCache.graphKey). A GPU
   * backend records the first and replays later ones as CUDA graphs; a step that turns
   * out different falls back at the first difference and runs as it is, so a wrong key
   * costs time, not results. Once a replay has shown that the record predicts the body
   * (its uploads the same bytes or `stepValues`), later replays skip the body and call
   * `skipped`. Without it, callers run `runGraphedStep`.
   */
  graphStep?<P>(key: string, step: GraphedStep<P>): Tensor;
  /**
   * An i32 tensor of `values()` whose values change from step to step (a decode step's
   * lengths and offsets): a backend that replays steps without running them calls
   * `values` again at each replay. The function must read the state it describes when
   * called, not values captured when it was made. Optional: `stepValues` (below) falls
   * back to `fromArray`.
   */
  fromStepValues?(values: () => Int32Array, shape: readonly number[]): Tensor;

  // --- memory -------------------------------------------------------------
  /** An f32 (default) or i32 tensor of `data`, kept in that type even where `dtype` is 16-bit. */
  fromArray(data: ArrayLike<number>, shape: readonly number[], dtype?: 'f32' | 'i32'): Tensor;
  /** A tensor in the backend's `dtype` from a checkpoint's little-endian bytes of `dtype` (converted on the host when the types differ). */
  fromBytes(bytes: Uint8Array, shape: readonly number[], dtype: 'f32' | 'f16' | 'bf16'): Tensor;
  /**
   * `readSync` as a promise: every backend copies (and, on a GPU, waits) before it
   * returns, so awaiting it does not let other work run while the device finishes.
   */
  read(t: Tensor): Promise<Float32Array | Int32Array>;
  /**
   * Starts copying `t` to the host without waiting for it. A decode step reads its
   * selection plans this way: the step's token readback waits for the device anyway,
   * so by the next step `get` returns at once. Inside a `graphStep` that records or
   * replays, a GPU backend queues the copy when the step ends (so it sees the tensor as
   * the step leaves it), and `get` before then throws.
   */
  readLater(t: Tensor): PendingRead;
  /**
   * `t`'s values on the host, in a new array the caller owns: Int32Array for i32,
   * Float32Array otherwise (f16/bf16 widened). Works on every backend and blocks until
   * the values are there: a GPU backend queues the copy behind the work already issued
   * on its compute stream and waits for it (a counted host synchronisation; inside a
   * `graphStep` it also ends the recording or replay). Host-memory backends just copy.
   */
  readSync(t: Tensor): Float32Array | Int32Array;
  /** Frees `t` now (its memory returns once no view shares it); a no-op where memory is garbage collected. */
  dispose(t: Tensor): void;
  /** A view of the same elements under another shape (no copy). */
  reshape(t: Tensor, shape: readonly number[]): Tensor;
  /** Rows [start, start + count) along the first dimension: a view or a copy, as the backend likes (so writes to it may not reach `t`). */
  sliceRows(t: Tensor, start: number, count: number): Tensor;
  /** Concatenates tensors along their first dimension. */
  concatRows(parts: readonly Tensor[]): Tensor;
  /**
   * Writes `src`'s elements over `dst`'s (the same dtype and element count), after the
   * work issued before it and before the work issued after (a GPU queues a copy on its
   * compute stream). An engine keeps a step's greedy tokens on the device this way, in a
   * tensor the next step's inputs read (EngineConfig.overlapSteps). Optional.
   */
  copyInto?(dst: Tensor, src: Tensor): void;
  /**
   * `x`'s rows followed by rows of unspecified values, `rows` in all: the input of a
   * padded product (RowBatch.padTo), whose extra rows' results are dropped. A product's
   * row depends on that row alone, so the extra rows need not be zero, and a backend
   * that pads its decode products saves writing them. Optional: padding falls back to
   * concatenating zero rows.
   */
  padRows?(x: Tensor, rows: number): Tensor;

  // --- dense math ---------------------------------------------------------
  /** x [m, k] @ w [n, k]^T. `outDtype` 'f32' asks for a float32 result (logits) whatever `dtype` is. */
  matmul(x: Tensor, w: Tensor, outDtype?: 'f32'): Tensor;
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor;
  /** [a + b, rmsNorm(a + b)]: a residual add and the norm after it, exactly as `add` then `rmsNorm` compute them. */
  addRmsNorm(a: Tensor, b: Tensor, weight: Tensor, eps: number): [Tensor, Tensor];
  createRopeTable(spec: RopeSpec): RopeTable;
  /**
   * q, k and v from one product with the stacked [q; k; v] weights: qkv is
   * [T, (numHeads + 2 numKvHeads) * D]; q [T, numHeads, D] and k [T, numKvHeads, D] come
   * back rotated in the "rotate half" convention at the i32 [T] positions (which must
   * lie in the table), v [T, numKvHeads, D] as it is.
   */
  ropeQkv(qkv: Tensor, positions: Tensor, table: RopeTable, numHeads: number, numKvHeads: number): [Tensor, Tensor, Tensor];
  /** silu(gate) * up elementwise, gate and up being the column halves of gateUp [T, 2I] (one product with the stacked [gate; up] weights): [T, I]. */
  siluGatePacked(gateUp: Tensor): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  /** Rows of `t` along its first dimension at i32 `indices` (embedding lookup, token gathers). */
  gatherRows(t: Tensor, indices: Tensor): Tensor;

  // --- KV pages -----------------------------------------------------------
  createKvStorage(location: PoolLocation, slots: number, geometry: KvGeometry): KvStorage;
  createDigestStorage(rows: number, geometry: KvGeometry): DigestStorage;
  /** Returns a pool's or a digest store's memory; the storage must not be used again. */
  freeStorage(storage: KvStorage | DigestStorage): void;
  /** Writes token t of k/v [T, numKvHeads, D] at (slots[t], offsets[t]). */
  appendKv(storage: KvStorage, k: Tensor, v: Tensor, slots: Tensor, offsets: Tensor): void;
  /** Digest of each full page slots[i] into digest row rows[i]. */
  digestPages(storage: KvStorage, slots: Tensor, digests: DigestStorage, rows: Tensor, variant: DigestVariant): void;
  /**
   * Importance estimate of pages (digest rows i32 [P]) for queries [numHeads, D],
   * averaged over each group of `numHeads / groups` consecutive heads: f32 [groups, P].
   */
  estimate(q: Tensor, digests: DigestStorage, rows: Tensor, groups: number, variant: DigestVariant): Tensor;
  /** `target`'s element updates[i, 0] (flat index) := updates[i, 1], in place, for i32 `target` and updates [n, 2] with distinct in-range indices. */
  scatterI32(target: Tensor, updates: Tensor): void;
  /** Estimate, select, plan, apply and list in one go for a batch; see SelectResidentArgs. */
  selectResident(args: SelectResidentArgs): SelectResidentResult;
  /**
   * Copies the recalls a `selectResident` copy list names from the host pool into the
   * device pool; the list is never read on the host. Backups still in flight to those
   * host slots must be ordered first with `awaitCopy`.
   */
  recallListed(host: KvStorage, device: KvStorage, copies: Tensor): void;
  /** Quest's per-group page lists from estimates and the page tables, in one go for a batch; see SelectAttendArgs. Absent: Quest decides on the host. */
  selectAttend?(args: SelectAttendArgs): SelectAttendResult;
  /**
   * Writes the append targets of token-level layers' rows that hold a free cell, from
   * the token-cell tables; see PlaceTokenCellsArgs. Comes with `evictTokenCells`: a
   * backend has both or neither. Absent: H2O and TOVA decide on the host.
   */
  placeTokenCells?(args: PlaceTokenCellsArgs): void;
  /**
   * Updates the token-cell scores from a step's attention and frees each full row's
   * victim, in one go for a batch; see EvictTokenCellsArgs. Returns the victims, i32
   * [B] (-1: none), or with `victimsInto` that tensor (whole).
   */
  evictTokenCells?(args: EvictTokenCellsArgs): Tensor;
  /**
   * Copies whole pages between (or within) pools. It may return before the copy is
   * done: a GPU backend queues device -> host backups on a copy stream of their own
   * (after the work issued so far), which later work waits for only after `awaitCopy`.
   */
  copyPages(src: KvStorage, srcSlots: readonly number[], dst: KvStorage, dstSlots: readonly number[]): CopyTicket;
  /** Orders everything issued later after the copy (a GPU's compute stream waits on an event; the host does not wait). */
  awaitCopy(ticket: CopyTicket): void;
  pagedAttention(args: PagedAttentionArgs): { out: Tensor; tokenScores?: Tensor };
  /**
   * A prefill chunk's causal attention over its sequence's pages, [count, numHeads,
   * headDim]: row r attends positions 0 .. start + r. The same numbers as
   * `pagedAttention` with each row's causal list (core's `chunkAttention` does that
   * where a backend has no such operation); a GPU reads each page once for many rows
   * rather than once a row.
   */
  chunkAttention?(args: ChunkAttentionArgs): Tensor;
  causalAttention(args: CausalAttentionArgs): { out: Tensor; keyScores?: Tensor };

  // --- decoding -----------------------------------------------------------
  /** Index of each row's largest logit, i32 [B], for logits [B, V]. */
  argmax(logits: Tensor): Tensor;
  /** One token per row of logits [B, V]; `uniforms` f32 [B] in [0, 1) make it reproducible. */
  sample(logits: Tensor, params: SamplingParams, uniforms: Tensor): Tensor;
}
