import type { Backend, Tensor } from '../backend.js';
import type { CacheOptions, KvGeometry, ResolvedCacheOptions } from '../config.js';
import { resolveCacheOptions } from '../config.js';
import { SequenceError, internalError, invalidArgument } from '../errors.js';
import { fullPolicy } from '../policies/full.js';
import type { KvPolicy } from '../policies/policy.js';
import { range } from '../policies/policy.js';
import { createPolicy } from '../policies/registry.js';
import { PageStore } from './page-store.js';
import { prefillTokens } from './token-cells.js';
import { decodeLayer, placeToken, stepNeeds, type PageStartVictims, type TokenTarget } from './decode-step.js';
import { pageContext } from './page-context.js';
import { forwardChangesNothing, planWidth, reserveRows, rowsInSync } from './device-select.js';
import { reserveTokenRows, tokensToHost, victimsOnDevice } from './token-device.js';
import type { StepVictims } from './token-tables.js';
import type { ChunkHost } from './chunked-prefill.js';
import { beginChunk, chunkNeeds, chunkedPrefillPeak, ensureNeeds, newChunkedPrefill, releaseChunked, writeChunkLayer } from './chunked-prefill.js';
import { PrefixCache, type PrefixCacheStats } from './prefix-cache.js';
import { park, parkNeeds, releaseParked, resume, resumeNeeds } from './parking.js';
import type { LayerState, PageEntry, PageLayer, PendingChunk, PoolNeeds, SequenceState } from './layer-state.js';
import { emptyPage, newLayerState } from './layer-state.js';
import type { StepPlans } from './device-tables.js';
import type { KvStats, LayerView } from './stats.js';
import { collectStats, layerView } from './stats.js';

export interface KvCacheInit {
  readonly geometry: KvGeometry;
  readonly options: CacheOptions;
  readonly backend: Backend;
  /**
   * Share the pools (and their storage) of another cache, so that caches of different
   * policies draw on one device and one host pool. Its geometry and backend must be
   * this cache's, and `options.devicePages` / `hostPages` its pool sizes. A caller
   * running several caches on one store checks the sum of their needs (`stepNeeds`)
   * before a step: each cache checks only its own.
   */
  readonly store?: PageStore;
  /**
   * Keep the full pages of freed sequences for prompts that start with the same tokens
   * (`free(id, tokens)`, then `admitChunked(length, prompt)`); see PrefixCache. Page
   * policies only: a cache of a token-level policy (StreamingLLM, H2O, TOVA) keeps cells,
   * not pages of consecutive tokens, and ignores it. Default false.
   */
  readonly prefixCache?: boolean;
}

/** A prefill chunk begun by `beginPrefillChunk`: tokens [start, start + count) of the prompt. */
export interface PrefillChunk {
  readonly id: number;
  readonly start: number;
  readonly count: number;
  /** The prompt's last chunk: each layer then applies the end-of-prompt policy. */
  readonly last: boolean;
}

/** A decoding step begun by `beginStep`: the batch and where each layer writes. */
export interface DecodeStep {
  readonly ids: readonly number[];
  /** Position of the new token of each sequence. */
  readonly positions: readonly number[];
  /** [layer][batch row] write targets. */
  readonly targets: readonly (readonly TokenTarget[])[];
  /**
   * The same targets on the backend, uploaded once for the whole step: i32
   * [layers, 2, rowsPadded] (slots, then offsets; rows padded to a multiple of 4 so
   * that every layer's part is an aligned view).
   */
  readonly written: Tensor;
  /** Where device-selecting layers put their plans, read back once after the last layer. */
  readonly plans: StepPlans;
  /** Where token layers deciding on the device put their victims, read back once after the last layer. */
  readonly victims: StepVictims;
  /** The step's graph key (`graphKey`, before the step), or null. */
  readonly key: string | null;
}

/** What a keyed step's forward pass left to read back: the layers whose decision rows it gathered (see `skipStep`). */
interface StepGathered {
  readonly plans: StepPlans['gathered'];
  readonly victims: StepVictims['gathered'];
}

/** Keyed steps whose gathering is remembered (the step graphs keep fewer). */
const GATHERED_KEYS = 8;

/** Numbers caches for their graph keys. */
let nextCacheSerial = 0;

/**
 * The page manager: pools, per-(sequence, layer) page tables and backup ledgers,
 * digests, and the policy's decisions applied to them through a Backend.
 *
 * Every public method checks its arguments and the pools it needs before it changes
 * anything, so an error leaves the manager as it was.
 */
export class KvCache {
  readonly geometry: KvGeometry;
  readonly options: ResolvedCacheOptions;
  readonly policy: KvPolicy;
  readonly backend: Backend;
  private readonly sequences = new Map<number, SequenceState>();
  private readonly full = fullPolicy();
  private nextId = 1;
  /** The newest step's targets on the backend (DecodeStep.written), freed after its last layer (or by the next step, or close). */
  private lastTargets: Tensor | null = null;
  /** Tells this cache's graph keys from another's. */
  private readonly serial = nextCacheSerial++;
  /**
   * Bumped by every change made outside decode steps (admissions, prefill, frees, forks,
   * parking, the prefix cache). A graph key names it: a step replayed without its
   * forward pass repeats what its record did with pages, slots and rows, which such a
   * change may have moved.
   */
  private epoch = 0;
  /** By graph key, what the newest step under it gathered (`skipStep` gathers it again). */
  private readonly gatheredByKey = new Map<string, StepGathered>();
  /** The pools, their storage and the page moves between them. */
  readonly store: PageStore;
  /** A store passed in is shared with other caches and outlives this one. */
  private readonly ownsStore: boolean;
  /** Full pages of freed sequences, or null when prefix caching is off. */
  private readonly prefixes: PrefixCache | null;

  constructor(init: KvCacheInit) {
    this.geometry = init.geometry;
    this.options = resolveCacheOptions(init.geometry, init.options);
    this.policy = createPolicy(this.options);
    this.backend = init.backend;
    this.ownsStore = !init.store;
    this.store = init.store
      ? checkSharedStore(init.store, this.geometry, this.options, init.backend)
      : new PageStore(init.backend, this.geometry, this.options);
    this.prefixes = init.prefixCache && this.policy.kind === 'page' ? new PrefixCache(this.store, this.pageSize, this.geometry.numLayers) : null;
  }

  /**
   * Frees every sequence and, unless the store is shared, the pools' memory (device
   * memory on a GPU is not garbage collected). The cache is unusable afterwards.
   */
  close(): void {
    this.settle();
    for (const id of [...this.sequences.keys()]) this.free(id);
    this.prefixes?.clear();
    if (this.lastTargets) this.backend.dispose(this.lastTargets);
    this.lastTargets = null;
    if (this.ownsStore) this.store.dispose();
  }

  get pageSize(): number {
    return this.geometry.pageSize;
  }

  /** Token cells of a token-level layer: the budget pages. One cell is always kept free for the incoming token. */
  get tokenCells(): number {
    return this.options.budgetPages * this.pageSize;
  }

  // --- lifecycle ------------------------------------------------------------

  /** Registers a sequence whose prompt of `promptLength` tokens each layer then writes with `prefillLayer`. */
  admit(promptLength: number): number {
    this.epoch++;
    if (!Number.isInteger(promptLength) || promptLength < 1) {
      throw invalidArgument(`a prompt needs at least one token, got ${String(promptLength)}`);
    }
    const layers = range(0, this.geometry.numLayers).map((l) => this.newLayer(l));
    this.ensurePrefillFits(layers, promptLength);
    const id = this.nextId++;
    this.sequences.set(id, { id, length: promptLength, layers, prefilled: layers.map(() => false) });
    return id;
  }

  /** Refuses a prompt whose prefill cannot fit the pools as they are now. */
  private ensurePrefillFits(layers: LayerState[], length: number): void {
    const needs = this.prefillNeeds(layers, length);
    this.store.devicePool.ensureFree(needs.device);
    this.store.hostPool.ensureFree(needs.host);
    this.store.digestPool.ensureFree(needs.digests);
  }

  /**
   * Pool pages a one-shot prefill (`admit`, then `prefillLayer` for every layer) of
   * `promptLength` tokens holds at its peak: each layer's kept pages, plus the pages a
   * budgeted layer holds only while it prefills (one layer at a time).
   */
  prefillPeak(promptLength: number): PoolNeeds {
    if (!Number.isInteger(promptLength) || promptLength < 1) throw invalidArgument(`a prompt needs at least one token, got ${String(promptLength)}`);
    return this.prefillNeeds(
      range(0, this.geometry.numLayers).map((l) => this.newLayer(l)),
      promptLength,
    );
  }

  private prefillNeeds(layers: readonly LayerState[], length: number): PoolNeeds {
    const ps = this.pageSize;
    const numPages = Math.ceil(length / ps);
    const fullPages = Math.floor(length / ps);
    let device = 0;
    let transient = 0;
    let host = 0;
    let digests = 0;
    for (const layer of layers) {
      if (layer.kind === 'token') {
        device += Math.ceil(Math.min(length, this.tokenCells - 1) / ps);
        continue;
      }
      // A budgeted layer holds the whole prompt while it prefills, then keeps the budget.
      const kept = layer.budgeted ? Math.min(numPages, this.options.budgetPages) : numPages;
      device += kept;
      transient = Math.max(transient, numPages - kept);
      if (layer.digests) digests += fullPages;
      if (layer.backups) host += fullPages;
    }
    return { device: device + transient, host, digests };
  }

  has(id: number): boolean {
    return this.sequences.has(id);
  }

  get sequenceIds(): number[] {
    return [...this.sequences.keys()];
  }

  length(id: number): number {
    return this.seq(id).length;
  }

  /**
   * Returns every page and backup of the sequence to its pool. With `tokens` (the
   * sequence's tokens, prompt first) and prefix caching on, its full pages are kept in
   * the prefix cache first, for later prompts that start with the same tokens; a
   * sequence still prefilling or parked is freed without caching.
   */
  free(id: number, tokens?: readonly number[]): void {
    this.epoch++;
    this.settle();
    const seq = this.sequences.get(id);
    if (!seq) throw new SequenceError(`cannot free sequence ${id}: it does not exist (already freed?)`);
    if (tokens && this.prefixes && !seq.chunked && !seq.parked && !seq.prefilled.includes(false)) {
      const pages = Math.floor(Math.min(seq.length, tokens.length) / this.pageSize);
      this.prefixes.insert(tokens, pages, (l, p) => (seq.layers[l] as PageLayer).pages[p]);
    }
    if (seq.chunked) releaseChunked(this.store, seq.chunked);
    releaseParked(this.store, seq);
    for (const layer of seq.layers) this.store.releaseLayer(layer);
    this.sequences.delete(id);
  }

  /**
   * A new sequence sharing the parent's full pages (slots, backups and digests are
   * reference-counted); the partial page and token-level caches are copied.
   */
  fork(id: number): number {
    this.epoch++;
    this.settle();
    const parent = this.seq(id);
    this.requirePrefilled(parent);
    this.requireOnDevice(parent);
    let copies = 0;
    for (const layer of parent.layers) {
      if (layer.kind === 'token') copies += layer.slots.length;
      else if (parent.length % this.pageSize !== 0) copies += 1;
    }
    this.store.devicePool.ensureFree(copies);
    const child = this.nextId++;
    const src: number[] = [];
    const dst: number[] = [];
    const layers = parent.layers.map((layer): LayerState => {
      if (layer.kind === 'token') {
        // The parent's scores may live only on the device: the child starts from them.
        this.store.tokenTablesOf(layer).pullScores(layer);
        const slots = layer.slots.map((s) => {
          const fresh = this.store.devicePool.allocate();
          src.push(s);
          dst.push(fresh);
          return fresh;
        });
        return { ...layer, slots, positions: layer.positions.slice(), scores: layer.scores.slice(), deviceRow: -1, rowSynced: false };
      }
      const pages = layer.pages.map((p, i): PageEntry => {
        const partial = i === layer.pages.length - 1 && parent.length % this.pageSize !== 0;
        if (partial) {
          const fresh = this.store.devicePool.allocate();
          src.push(p.slot);
          dst.push(fresh);
          return emptyPage(fresh);
        }
        if (p.slot >= 0) this.store.devicePool.retain(p.slot);
        if (p.host >= 0) this.store.hostPool.retain(p.host);
        if (p.digest >= 0) this.store.digestPool.retain(p.digest);
        return { ...p };
      });
      // Shared slots: neither layer may select on the device until they are its own again.
      this.store.deviceTables.invalidate(layer);
      return { ...layer, pages, deviceRow: -1, rowSynced: false };
    });
    if (src.length) this.backend.copyPages(this.store.deviceStorage, src, this.store.deviceStorage, dst);
    this.sequences.set(child, { id: child, length: parent.length, layers, prefilled: [...parent.prefilled] });
    return child;
  }

  // --- prefill --------------------------------------------------------------

  /**
   * Writes one layer's prompt K/V (q [T, numHeads, D], k and v [T, numKvHeads, D],
   * keys rotated) into pages and returns causal attention over the prompt.
   */
  prefillLayer(id: number, layerIndex: number, q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
    this.epoch++;
    const seq = this.seq(id);
    const layer = this.layerOf(seq, layerIndex);
    if (seq.prefilled[layerIndex]) throw invalidArgument(`layer ${layerIndex} of sequence ${id} is already prefilled`);
    if (seq.chunked) throw invalidArgument(`sequence ${id} is prefilled in chunks: use beginPrefillChunk and prefillChunkLayer`);
    const t = seq.length;
    if (q.shape[0] !== t || k.shape[0] !== t || v.shape[0] !== t) {
      throw invalidArgument(`prefill of sequence ${id} expects ${t} rows of q/k/v, got ${q.shape[0]}/${k.shape[0]}/${v.shape[0]}`);
    }
    const out =
      layer.kind === 'page'
        ? this.prefillPages(seq, layer, q, k, v, scale)
        : prefillTokens(this.store, this.tokenCells, this.pageSize, seq, layer, q, k, v, scale);
    seq.prefilled[layerIndex] = true;
    return out;
  }

  private prefillPages(seq: SequenceState, layer: PageLayer, q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
    const ps = this.pageSize;
    const numPages = Math.ceil(seq.length / ps);
    const fullPages = Math.floor(seq.length / ps);
    this.store.devicePool.ensureFree(numPages);
    if (layer.digests) this.store.digestPool.ensureFree(fullPages);
    if (layer.backups) this.store.hostPool.ensureFree(fullPages);
    layer.pages = this.store.devicePool.allocateMany(numPages).map(emptyPage);
    // Typed arrays filled in one loop: at 128k tokens, 32 layers of mapped number arrays
    // cost the host about 0.8 s of a prefill (this VM) against 0.2 s.
    const slots = new Int32Array(seq.length);
    const offsets = new Int32Array(seq.length);
    for (let t = 0; t < seq.length; t++) {
      slots[t] = layer.pages[Math.floor(t / ps)].slot;
      offsets[t] = t % ps;
    }
    this.backend.appendKv(this.store.deviceStorage, k, v, this.store.i32(slots), this.store.i32(offsets));
    const full = range(0, fullPages);
    this.store.sealPages(layer, full);
    const { out } = this.backend.causalAttention({ q, k, v, scale });
    this.selectPrefillResident(layer, () => this.backend.sliceRows(q, seq.length - 1, 1));
    return out;
  }

  /** At the end of a prompt longer than the budget: sinks, window and the pages the last query scores highest stay. */
  private selectPrefillResident(layer: PageLayer, lastQuery: () => Tensor): void {
    const numPages = layer.pages.length;
    if (!layer.budgeted || numPages <= this.options.budgetPages) return;
    const candidates = range(this.options.sinkPages, numPages - this.options.windowPages);
    const ctx = pageContext(this, layer, lastQuery, candidates);
    const keep = new Set(layer.policy.prefillResident(ctx));
    for (const p of candidates) if (!keep.has(p)) this.store.evict(layer.pages[p]);
  }

  // --- chunked prefill (chunked-prefill.ts) -----------------------------------

  /**
   * Registers a sequence whose prompt of `promptLength` tokens is then written in
   * chunks (`beginPrefillChunk`, then `prefillChunkLayer` for every layer), so that
   * decode steps of other sequences can run between chunks. Takes no pages yet: each
   * chunk checks and takes its own; `chunkedPrefillPeak` is the most it will hold.
   */
  admitChunked(promptLength: number, prompt?: readonly number[]): number {
    this.epoch++;
    if (!Number.isInteger(promptLength) || promptLength < 1) {
      throw invalidArgument(`a prompt needs at least one token, got ${String(promptLength)}`);
    }
    if (prompt && prompt.length < promptLength) throw invalidArgument(`a prompt of ${promptLength} tokens came with ${prompt.length} token ids`);
    const layers = range(0, this.geometry.numLayers).map((l) => this.newLayer(l));
    const nodes = this.matchPrefix(promptLength, prompt);
    if (prompt && this.prefixes) this.prefixes.countQuery(promptLength, nodes.length * this.pageSize);
    if (nodes.length) {
      const pages = this.prefixes!.attach(nodes);
      layers.forEach((layer, l) => {
        if (layer.kind === 'page') layer.pages = pages[l];
      });
    }
    const id = this.nextId++;
    const cached = nodes.length * this.pageSize;
    this.sequences.set(id, {
      id,
      length: cached,
      cachedTokens: cached,
      layers,
      prefilled: layers.map(() => false),
      chunked: newChunkedPrefill(promptLength, layers),
    });
    return id;
  }

  /** The cached pages a prompt starts with: whole pages, leaving at least its last token to prefill (its logits are needed). */
  private matchPrefix(promptLength: number, prompt?: readonly number[]) {
    if (!prompt || !this.prefixes) return [];
    return this.prefixes.match(prompt, Math.floor((promptLength - 1) / this.pageSize));
  }

  /** Tokens of this prompt that `admitChunked(promptLength, prompt)` would take from the prefix cache (0 when it is off). */
  prefixHit(promptLength: number, prompt: readonly number[]): number {
    return this.matchPrefix(promptLength, prompt).length * this.pageSize;
  }

  /** Prompt tokens the sequence started from the prefix cache instead of prefilling. */
  cachedTokens(id: number): number {
    return this.seq(id).cachedTokens ?? 0;
  }

  /** The prefix cache's counters and holdings, or null when prefix caching is off. */
  prefixStats(): PrefixCacheStats | null {
    return this.prefixes ? this.prefixes.stats() : null;
  }

  /**
   * Pool pages a chunked prefill of `promptLength` tokens holds at its peak (its last
   * chunk); with `prompt`, of a prompt that starts from the prefix cache's pages.
   */
  chunkedPrefillPeak(promptLength: number, prompt?: readonly number[]): PoolNeeds {
    if (!Number.isInteger(promptLength) || promptLength < 1) throw invalidArgument(`a prompt needs at least one token, got ${String(promptLength)}`);
    const nodes = this.matchPrefix(promptLength, prompt);
    return chunkedPrefillPeak(
      this.chunkHost,
      range(0, this.geometry.numLayers).map((l) => this.newLayer(l)),
      promptLength,
      { pages: nodes.length, promotions: nodes.length ? this.prefixes!.promotions(nodes) : 0 },
    );
  }

  /** Prompt tokens of a chunked sequence not written yet (0 once prefilled). */
  promptRemaining(id: number): number {
    const seq = this.seq(id);
    return seq.chunked ? seq.chunked.promptLength - seq.length : 0;
  }

  /** Pool pages the next chunk of `count` tokens takes. */
  prefillChunkNeeds(id: number, count: number): PoolNeeds {
    const seq = this.seq(id);
    if (!seq.chunked) throw invalidArgument(`sequence ${id} is not being prefilled in chunks`);
    return chunkNeeds(this.chunkHost, seq, seq.chunked, count);
  }

  /** Checks and takes the pages of the next `count` prompt tokens in every layer. */
  beginPrefillChunk(id: number, count: number): PrefillChunk {
    this.epoch++;
    const seq = this.seq(id);
    const c: PendingChunk = beginChunk(this.chunkHost, seq, count);
    return { id, start: c.start, count: c.count, last: c.last };
  }

  /**
   * One layer of a begun chunk: q [count, numHeads, D], k and v [count, numKvHeads, D]
   * (keys rotated at positions start..start + count - 1). Writes the pages (digests and
   * backups of pages that filled) and returns causal attention over the prompt so far.
   */
  prefillChunkLayer(chunk: PrefillChunk, layerIndex: number, q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
    this.epoch++;
    const seq = this.seq(chunk.id);
    if (seq.chunked?.chunk?.start !== chunk.start) throw invalidArgument(`chunk at ${chunk.start} of sequence ${chunk.id} is not the one begun`);
    return writeChunkLayer(this.chunkHost, seq, layerIndex, q, k, v, scale);
  }

  private get chunkHost(): ChunkHost {
    return {
      store: this.store,
      options: this.options,
      pageSize: this.pageSize,
      tokenCells: this.tokenCells,
      selectPrefillResident: (layer, lastQuery) => this.selectPrefillResident(layer, lastQuery),
    };
  }

  // --- parking (parking.ts) ---------------------------------------------------

  /** Host pages `park(id)` takes. */
  parkNeeds(id: number): PoolNeeds {
    this.settle();
    return parkNeeds(this.seq(id));
  }

  /**
   * Gives every device page of a prefilled sequence back, keeping its state in the
   * host pool (pages without a backup and token cells are copied there). Not between
   * `beginStep` and its `decodeLayer` calls. Returns the pages copied to the host.
   */
  park(id: number): number {
    this.epoch++;
    this.settle();
    this.invalidateRows(this.seq(id));
    return park(this.store, this.seq(id));
  }

  /** Device pages `resume(id)` takes. */
  resumeNeeds(id: number): PoolNeeds {
    this.settle();
    return resumeNeeds(this.seq(id));
  }

  /** Brings a parked sequence back exactly as it was (its resident pages recalled); returns the pages copied. */
  resume(id: number): number {
    this.epoch++;
    this.settle();
    this.invalidateRows(this.seq(id));
    return resume(this.store, this.seq(id));
  }

  isParked(id: number): boolean {
    return Boolean(this.seq(id).parked);
  }

  // --- decode ---------------------------------------------------------------

  /**
   * The key under which a backend may replay the next decode step of these sequences
   * as a graph (Backend.graphStep): steps with equal keys issue the same work on other
   * data (other tokens, positions and lengths within the same pages). null when the
   * step changes the structure (a page starts or fills in one of the sequences).
   */
  graphKey(ids: readonly number[]): string | null {
    this.settleFor(ids);
    const ps = this.geometry.pageSize;
    const tables = this.store.deviceTables;
    const tokens = this.policy.kind === 'token' ? this.store.tokenTables(this.options.budgetPages) : null;
    // Queued writes, and rows out of sync, are applied inside the step: its work differs from the next one's.
    if (tables.queued || tokens?.queued) return null;
    // Another cache's steps use other pools: its own keys.
    let key = `cache ${this.serial}.${this.epoch} tables ${tables.version}.${tokens?.version ?? 0}: `;
    for (const id of ids) {
      const s = this.seq(id);
      if (startsOrFillsPage(s.length, ps) || !rowsInSync(this, s)) return null;
      key += `${id}:${Math.floor(s.length / ps)} `;
    }
    return key;
  }

  /**
   * Whether a decode step of these sequences may run without its forward pass, as a
   * replay of a recorded one under the same graph key (Backend.graphStep's `skipped`):
   * every layer decides on the device or attends all its pages, so the forward pass
   * changes nothing on the host that `skipStep` does not redo, and a step under this
   * key has gathered its decision rows before.
   */
  canSkipForward(ids: readonly number[]): boolean {
    const key = this.graphKey(ids);
    return key !== null && this.gatheredByKey.has(key) && ids.every((id) => forwardChangesNothing(this, this.seq(id)));
  }

  /**
   * Finishes a step whose forward pass did not run (a graph replayed it): gathers the
   * decision rows its record's layers gathered and starts their read, and frees the
   * step's targets, as the last `decodeLayer` does.
   */
  skipStep(step: DecodeStep): void {
    const gathered = step.key === null ? undefined : this.gatheredByKey.get(step.key);
    if (!gathered) throw internalError('a decode step skipped its forward pass under a key no step gathered for');
    step.plans.gatherAgain(gathered.plans);
    step.victims.gatherAgain(gathered.victims);
    this.endStep(step);
  }

  /**
   * Grows each sequence by one token and places that token in every layer: a new
   * page when one starts (at budget, in the slot of the page leaving the window),
   * or the free cell of a token-level cache. Planned from lengths alone: no device read.
   */
  beginStep(ids: readonly number[]): DecodeStep {
    const key = this.graphKey(ids);
    // Where a page starts, the page giving up its slot is found once, for the needs and
    // for the placement (each looks at every page of the layer; nothing in between changes them).
    const victims: PageStartVictims = new Map();
    ensureNeeds(this.store, this.needsOf(ids, victims));
    const seqs = ids.map((id) => this.seq(id));
    const targets: TokenTarget[][] = range(0, this.geometry.numLayers).map(() => []);
    for (const s of seqs) {
      s.layers.forEach((layer, l) => targets[l].push(placeToken(this, s, layer, victims)));
    }
    reserveRows(this, seqs);
    reserveTokenRows(this, seqs);
    const positions = seqs.map((s) => s.length);
    for (const s of seqs) s.length++;
    // A recall may overwrite a victim whose backup is still being copied out: later work waits for it (on the device).
    if (this.store.lastBackup) this.backend.awaitCopy(this.store.lastBackup);
    const L = this.geometry.numLayers;
    // The decision rows' tensors are made here, before the forward pass, which a replayed step may skip.
    const width = planWidth(this, this.policy);
    return {
      ids: [...ids],
      positions,
      targets,
      written: this.uploadTargets(targets, ids.length),
      plans: this.store.deviceTables.stepPlans(L, ids.length, width ?? undefined),
      victims: this.store.tokenTables(this.options.budgetPages).stepVictims(L, ids.length, victimsOnDevice(this, this.policy)),
      key,
    };
  }

  /**
   * Pool pages a decode step of these sequences may take (new pages, backups, digests
   * and the worst case of its recalls); `beginStep` checks exactly this.
   */
  stepNeeds(ids: readonly number[]): PoolNeeds {
    return this.needsOf(ids);
  }

  private needsOf(ids: readonly number[], victims?: PageStartVictims): PoolNeeds {
    if (new Set(ids).size !== ids.length) throw invalidArgument('a decode step lists a sequence twice');
    this.settleFor(ids);
    const seqs = ids.map((id) => this.seq(id));
    seqs.forEach((s) => {
      this.requirePrefilled(s);
      this.requireOnDevice(s);
    });
    return stepNeeds(this, seqs, victims);
  }

  /**
   * One layer of a decode step: appends the new K/V, seals pages that filled (digest,
   * host backup), applies the policy's selection (recalls, evictions), and returns
   * paged attention for q [B, numHeads, D].
   */
  decodeLayer(step: DecodeStep, layerIndex: number, q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
    const seqs = step.ids.map((id) => this.seq(id));
    const b = seqs.length;
    if (q.shape[0] !== b || k.shape[0] !== b || v.shape[0] !== b) {
      throw invalidArgument(`decode of ${b} sequence(s) expects ${b} rows of q/k/v`);
    }
    const targets = step.targets[layerIndex];
    if (!targets) throw invalidArgument(`layer ${layerIndex} outside 0..${this.geometry.numLayers - 1}`);
    const layers = seqs.map((s) => this.layerOf(s, layerIndex));
    const pad = paddedRows(b);
    const at = (part: number) => this.backend.sliceRows(step.written, (2 * layerIndex + part) * pad, b);
    const out = decodeLayer(
      this,
      seqs,
      layers,
      targets,
      { slots: at(0), offsets: at(1) },
      { plans: step.plans, victims: step.victims, layer: layerIndex },
      q,
      k,
      v,
      scale,
    );
    // The step's plans are complete after its last layer: their one read starts before the token readback waits.
    if (layerIndex === this.geometry.numLayers - 1) {
      if (step.key !== null) {
        if (this.gatheredByKey.size >= GATHERED_KEYS) this.gatheredByKey.delete(this.gatheredByKey.keys().next().value!);
        this.gatheredByKey.set(step.key, { plans: step.plans.gathered, victims: step.victims.gathered });
      }
      this.endStep(step);
    }
    return out;
  }

  /** After a step's last layer: the reads of its decision rows start, and its targets are freed. */
  private endStep(step: DecodeStep): void {
    this.store.deviceTables.finish(step.plans);
    this.store.tokenTables(this.options.budgetPages).finish(step.victims);
    // Freed with the step, not the next one: a step replayed as a graph must not keep its buffers.
    this.backend.dispose(step.written);
    this.lastTargets = null;
  }

  /**
   * Replays the selection plans of device steps onto the host's pages. Every method
   * that reads or changes pages between steps calls it first; after a step's token
   * readback it waits for nothing.
   */
  private settle(): void {
    this.store.settle();
  }

  /**
   * `settle` before planning a decode step of `ids`; or, where the step reads nothing
   * the device's last decisions change, only the decisions already read back
   * (PageStore.settleReady), so that the host plans a step while the device still runs
   * the one before (the engine's overlapped steps). That holds for page layers with no
   * sequence starting or filling a page: the token goes into each sequence's last page,
   * inside the window, which no recall moves (recalls swap candidates, never window
   * pages), and the step's pool needs count pages, not which slots hold them. A page
   * start takes the slot of a page the plans may have moved, and a token layer places
   * its token in the cell the last step's victim freed: those settle everything.
   */
  private settleFor(ids: readonly number[]): void {
    const ps = this.geometry.pageSize;
    const midPage =
      this.policy.kind === 'page' &&
      ids.every((id) => {
        const s = this.sequences.get(id);
        return s !== undefined && !startsOrFillsPage(s.length, ps);
      });
    if (midPage) this.store.settleReady();
    else this.settle();
  }

  /** The sequence's pages or cells change outside a device step: no row mirrors them (token rows give their scores back first). */
  private invalidateRows(s: SequenceState): void {
    for (const layer of s.layers) if (layer.kind === 'page') this.store.deviceTables.invalidate(layer);
    tokensToHost(this, s.layers);
  }

  /**
   * One upload of a step's write targets for every layer (instead of two per layer).
   * Freed after the last layer; a step cut short before it is freed here.
   */
  private uploadTargets(targets: readonly (readonly TokenTarget[])[], rows: number): Tensor {
    const pad = paddedRows(rows);
    const flat = new Int32Array(targets.length * 2 * pad);
    targets.forEach((row, l) =>
      row.forEach((t, r) => {
        flat[2 * l * pad + r] = t.slot;
        flat[(2 * l + 1) * pad + r] = t.offset;
      }),
    );
    if (this.lastTargets) this.backend.dispose(this.lastTargets);
    this.lastTargets = this.backend.keep(this.backend.fromArray(flat, [flat.length], 'i32'));
    return this.lastTargets;
  }

  private newLayer(l: number): LayerState {
    return newLayerState(l < this.options.fullLayers ? this.full : this.policy, this.tokenCells);
  }

  // --- helpers --------------------------------------------------------------

  private seq(id: number): SequenceState {
    const s = this.sequences.get(id);
    if (!s) throw new SequenceError(`sequence ${id} does not exist`);
    return s;
  }

  private layerOf(s: SequenceState, l: number): LayerState {
    const layer = s.layers[l];
    if (!layer) throw invalidArgument(`layer ${l} outside 0..${this.geometry.numLayers - 1}`);
    return layer;
  }

  private requirePrefilled(s: SequenceState): void {
    const missing = s.prefilled.indexOf(false);
    if (missing >= 0) throw invalidArgument(`sequence ${s.id} has not prefilled layer ${missing} yet`);
  }

  private requireOnDevice(s: SequenceState): void {
    if (s.parked) throw invalidArgument(`sequence ${s.id} is parked in the host pool: resume it first`);
  }

  // --- inspection -----------------------------------------------------------

  /** A copy of one (sequence, layer)'s state for tests, logs and the CLI. */
  view(id: number, layerIndex: number): LayerView {
    this.settle();
    return layerView(this.layerOf(this.seq(id), layerIndex));
  }

  /** @internal Raw state for the consistency checker. */
  get rawSequences(): ReadonlyMap<number, SequenceState> {
    this.settle();
    return this.sequences;
  }

  /** Drops every page the prefix cache holds (its slots go back once no sequence holds them). */
  clearPrefixCache(): void {
    this.epoch++;
    this.prefixes?.clear();
  }

  /** @internal The prefix cache's page copies for the consistency checker (none when it is off). */
  get rawPrefixEntries(): readonly PageEntry[] {
    return this.prefixes ? this.prefixes.entries() : [];
  }

  stats(): KvStats {
    this.settle();
    return collectStats(this.sequences.values(), this.store);
  }
}

/** A store shared with another cache must fit this one. */
function checkSharedStore(store: PageStore, g: KvGeometry, o: ResolvedCacheOptions, backend: Backend): PageStore {
  const sg = store.deviceStorage.geometry;
  const same = (Object.keys(g) as (keyof KvGeometry)[]).every((k) => sg[k] === g[k]);
  if (!same) throw invalidArgument('a shared page store must have the cache geometry');
  if (store.backend !== backend) throw invalidArgument('a shared page store must use the cache backend');
  if (store.devicePool.capacity !== o.devicePages || store.hostPool.capacity !== o.hostPages) {
    throw invalidArgument(
      `a shared page store has ${store.devicePool.capacity} device and ${store.hostPool.capacity} host pages; ` +
        `the options say ${o.devicePages} and ${o.hostPages}`,
    );
  }
  return store;
}

/** Batch rows padded to a multiple of 4, so that each layer's i32 part of DecodeStep.written starts 16-byte aligned. */
function paddedRows(rows: number): number {
  return Math.ceil(rows / 4) * 4;
}

/**
 * Whether a sequence of `length` tokens starts a page or fills one at its next decode
 * step: the step changes the structure (KvCache.graphKey: no key), and it reads what the
 * last steps' plans moved (KvCache.settleFor: it settles them all).
 */
function startsOrFillsPage(length: number, pageSize: number): boolean {
  return length % pageSize === 0 || (length + 1) % pageSize === 0;
}
