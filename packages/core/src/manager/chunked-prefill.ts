import type { Tensor } from '../backend.js';
import { causalPageTable, chunkAttention } from '../chunk-attention.js';
import type { ResolvedCacheOptions } from '../config.js';
import { invalidArgument } from '../errors.js';
import { range } from '../policies/policy.js';
import type { PageStore } from './page-store.js';
import type { ChunkedPrefill, LayerState, PageLayer, PendingChunk, PoolNeeds, SequenceState, TokenLayer, TokenPrefillBuffer } from './layer-state.js';
import { emptyPage } from './layer-state.js';

/*
 * Chunked prefill: a prompt written a chunk of rows at a time, so that a scheduler can
 * interleave it with decode steps of other sequences. Each chunk's queries attend,
 * through paged attention with one page list per row, over the sequence's pages up to
 * their own position: causal attention, as in the one-shot prefill.
 *
 * Every layer keeps the whole prompt on the device until the last chunk (the one-shot
 * prefill holds one layer at a time), because later chunks attend every earlier key.
 * At the last chunk each layer applies exactly the one-shot rules: ArkVale selects the
 * resident pages with the last prompt query, token-level layers keep the tokens their
 * policy picks from the statistic over the whole prompt. Pages and digests are then
 * identical to the one-shot prefill given the same q/k/v. The one place they can
 * differ is the token-level statistic (H2O's summed attention, TOVA's last-query
 * attention): it is the same quantity summed by another kernel, so it agrees only to
 * float rounding, and a keep decision can differ between tokens whose statistics tie
 * to within rounding.
 *
 * A prompt that starts from the prefix cache (PrefixCache) begins with the cached
 * pages already in place and resident, their slots shared with the cache, and prefills
 * only the rest. At its last chunk a budgeted layer copies the shared pages it keeps
 * into slots of its own, because selection on the device rewrites resident slots.
 */

/** What the chunked prefill needs of the page manager. */
export interface ChunkHost {
  readonly store: PageStore;
  readonly options: ResolvedCacheOptions;
  readonly pageSize: number;
  readonly tokenCells: number;
  /** ArkVale's end-of-prompt selection, shared with the one-shot prefill. */
  selectPrefillResident(layer: PageLayer, lastQuery: () => Tensor): void;
}

export function newChunkedPrefill(promptLength: number, layers: readonly LayerState[]): ChunkedPrefill {
  return {
    promptLength,
    tokens: layers.map((l): TokenPrefillBuffer | null =>
      l.kind === 'token' ? { slots: [], k: [], v: [], scores: l.policy.prefillScores ? new Float32Array(promptLength) : null, cells: [] } : null,
    ),
    chunk: null,
  };
}

/** Pages the next chunk of `count` tokens takes, starting at `start` (the tokens written so far). */
export function chunkNeeds(host: ChunkHost, seq: SequenceState, state: ChunkedPrefill, count: number): PoolNeeds {
  const ps = host.pageSize;
  const start = seq.length;
  const end = start + count;
  const newPages = Math.ceil(end / ps) - Math.ceil(start / ps);
  const filled = Math.floor(end / ps) - Math.floor(start / ps);
  let device = 0;
  let hostPages = 0;
  let digests = 0;
  for (const layer of seq.layers) {
    device += newPages;
    if (layer.kind === 'token') {
      if (end === state.promptLength) device += Math.ceil(Math.min(end, host.tokenCells - 1) / ps);
      continue;
    }
    if (layer.digests) digests += filled;
    if (layer.backups) hostPages += filled;
    if (end === state.promptLength && layer.budgeted) device += Math.min(host.options.budgetPages, sharedResident(host.store, layer));
  }
  return { device, host: hostPages, digests };
}

/** Resident pages of a layer whose slot another holder shares (the prefix cache). */
function sharedResident(store: PageStore, layer: PageLayer): number {
  let n = 0;
  for (const p of layer.pages) if (p.slot >= 0 && store.devicePool.refCount(p.slot) > 1) n++;
  return n;
}

/** What a prompt starts from in the prefix cache: whole pages, and the layer copies of them that are recalled first. */
export interface CachedStart {
  readonly pages: number;
  readonly promotions: number;
}

/** The most a chunked prefill of `length` tokens holds at once (at its last chunk), beyond the cached pages it starts from. */
export function chunkedPrefillPeak(
  host: ChunkHost,
  layers: readonly LayerState[],
  length: number,
  cached: CachedStart = { pages: 0, promotions: 0 },
): PoolNeeds {
  const ps = host.pageSize;
  const pages = Math.ceil(length / ps) - cached.pages;
  const full = Math.floor(length / ps) - cached.pages;
  let device = cached.promotions;
  let hostPages = 0;
  let digests = 0;
  for (const layer of layers) {
    device += pages;
    if (layer.kind === 'token') {
      device += Math.ceil(Math.min(length, host.tokenCells - 1) / ps);
      continue;
    }
    if (layer.digests) digests += full;
    if (layer.backups) hostPages += full;
    if (layer.budgeted) device += Math.min(host.options.budgetPages, cached.pages);
  }
  return { device, host: hostPages, digests };
}

export function ensureNeeds(store: PageStore, n: PoolNeeds): void {
  store.devicePool.ensureFree(n.device);
  store.hostPool.ensureFree(n.host);
  store.digestPool.ensureFree(n.digests);
}

/** Checks the chunk can be begun, then takes every page it needs (all layers), so that no layer can run short. */
export function beginChunk(host: ChunkHost, seq: SequenceState, count: number): PendingChunk {
  const state = seq.chunked;
  if (!state) throw invalidArgument(`sequence ${seq.id} is not being prefilled in chunks (admit it with admitChunked)`);
  if (state.chunk) throw invalidArgument(`sequence ${seq.id} has a chunk still to write in some layers`);
  const left = state.promptLength - seq.length;
  if (!Number.isInteger(count) || count < 1 || count > left) {
    throw invalidArgument(`a prefill chunk of sequence ${seq.id} takes 1..${left} tokens, got ${String(count)}`);
  }
  ensureNeeds(host.store, chunkNeeds(host, seq, state, count));
  const ps = host.pageSize;
  const end = seq.length + count;
  const newPages = Math.ceil(end / ps) - Math.ceil(seq.length / ps);
  const last = end === state.promptLength;
  seq.layers.forEach((layer, l) => {
    const fresh = host.store.devicePool.allocateMany(newPages);
    if (layer.kind === 'page') {
      layer.pages.push(...fresh.map(emptyPage));
      return;
    }
    const buffer = state.tokens[l]!;
    buffer.slots.push(...fresh);
    if (last) buffer.cells = host.store.devicePool.allocateMany(Math.ceil(Math.min(end, host.tokenCells - 1) / ps));
  });
  state.chunk = { start: seq.length, count, last, done: seq.layers.map(() => false) };
  return state.chunk;
}

/** Writes one layer of the pending chunk and returns its causal attention, [count, numHeads, D]. */
export function writeChunkLayer(host: ChunkHost, seq: SequenceState, layerIndex: number, q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  const state = seq.chunked;
  const chunk = state?.chunk;
  if (!state || !chunk) throw invalidArgument(`sequence ${seq.id} has no prefill chunk begun (call beginPrefillChunk first)`);
  const layer = seq.layers[layerIndex];
  if (!layer) throw invalidArgument(`layer ${layerIndex} outside 0..${seq.layers.length - 1}`);
  if (chunk.done[layerIndex]) throw invalidArgument(`layer ${layerIndex} of sequence ${seq.id} already wrote this chunk`);
  const { start, count } = chunk;
  if (q.shape[0] !== count || k.shape[0] !== count || v.shape[0] !== count) {
    throw invalidArgument(`a prefill chunk of sequence ${seq.id} expects ${count} rows of q/k/v, got ${q.shape[0]}/${k.shape[0]}/${v.shape[0]}`);
  }
  const out =
    layer.kind === 'page' ? chunkPages(host, layer, chunk, q, k, v, scale) : chunkTokens(host, layer, state, state.tokens[layerIndex]!, chunk, q, k, v, scale);
  chunk.done[layerIndex] = true;
  if (chunk.done.every(Boolean)) {
    seq.length = start + count;
    state.chunk = null;
    if (chunk.last) {
      seq.prefilled.fill(true);
      seq.chunked = null;
    }
  }
  return out;
}

function appendRows(host: ChunkHost, slots: readonly number[], start: number, k: Tensor, v: Tensor): void {
  const ps = host.pageSize;
  const positions = range(start, start + k.shape[0]);
  host.store.backend.appendKv(
    host.store.deviceStorage,
    k,
    v,
    host.store.i32(positions.map((p) => slots[Math.floor(p / ps)])),
    host.store.i32(positions.map((p) => p % ps)),
  );
}

function chunkPages(host: ChunkHost, layer: PageLayer, chunk: PendingChunk, q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  const ps = host.pageSize;
  const { start, count } = chunk;
  const slots = layer.pages.map((p) => p.slot);
  appendRows(host, slots, start, k, v);
  host.store.sealPages(layer, range(Math.floor(start / ps), Math.floor((start + count) / ps)));
  const out = chunkAttention(host.store.backend, { q, storage: host.store.deviceStorage, start, scale }, slots);
  if (chunk.last) {
    host.selectPrefillResident(layer, () => host.store.backend.sliceRows(q, count - 1, 1));
    if (layer.budgeted) ownResidentSlots(host.store, layer);
  }
  return out;
}

/** Copies the resident pages whose slot is shared (with the prefix cache) into slots of the layer's own. */
function ownResidentSlots(store: PageStore, layer: PageLayer): void {
  const shared = layer.pages.filter((p) => p.slot >= 0 && store.devicePool.refCount(p.slot) > 1);
  if (shared.length === 0) return;
  // Every fresh slot is taken before any shared one is let go: a shared slot the cache
  // alone holds could otherwise be reclaimed and handed out as a copy's destination.
  const fresh = store.devicePool.allocateMany(shared.length);
  store.backend.copyPages(
    store.deviceStorage,
    shared.map((p) => p.slot),
    store.deviceStorage,
    fresh,
  );
  shared.forEach((p, i) => {
    store.devicePool.release(p.slot);
    p.slot = fresh[i];
  });
}

function chunkTokens(
  host: ChunkHost,
  layer: TokenLayer,
  state: ChunkedPrefill,
  buffer: TokenPrefillBuffer,
  chunk: PendingChunk,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale: number,
): Tensor {
  const ps = host.pageSize;
  const b = host.store.backend;
  const { start, count } = chunk;
  appendRows(host, buffer.slots, start, k, v);
  // Kept past this layer's tidy scope until the last chunk picks the surviving rows.
  buffer.k.push(b.keep(k));
  buffer.v.push(b.keep(v));
  const stat = layer.policy.prefillScores;
  const table = causalPageTable(b, buffer.slots, start, count, ps);
  const { out, tokenScores } = b.pagedAttention({ q, storage: host.store.deviceStorage, ...table, scale, returnTokenScores: stat !== null });
  if (tokenScores && buffer.scores) {
    // [count, 1, width]: row r holds the probabilities of positions 0..start + r.
    const data = b.readSync(tokenScores);
    const width = data.length / count;
    if (stat === 'sum') {
      for (let r = 0; r < count; r++) for (let t = 0; t <= start + r; t++) buffer.scores[t] += data[r * width + t];
    } else if (chunk.last) {
      buffer.scores.set(data.subarray((count - 1) * width, (count - 1) * width + start + count));
    }
  }
  if (chunk.last) keepTokens(host, layer, state, buffer);
  return out;
}

/** The one-shot rule at the end of the prompt: the policy's kept positions go into the token cells. */
function keepTokens(host: ChunkHost, layer: TokenLayer, state: ChunkedPrefill, buffer: TokenPrefillBuffer): void {
  const ps = host.pageSize;
  const b = host.store.backend;
  const length = state.promptLength;
  const keep = layer.policy.prefillKeep(length, host.tokenCells - 1, buffer.scores);
  const idx = host.store.i32(keep);
  const all = (parts: Tensor[]) => (parts.length === 1 ? parts[0] : b.concatRows(parts));
  layer.slots = buffer.cells;
  b.appendKv(
    host.store.deviceStorage,
    b.gatherRows(all(buffer.k), idx),
    b.gatherRows(all(buffer.v), idx),
    host.store.i32(keep.map((_, c) => layer.slots[Math.floor(c / ps)])),
    host.store.i32(keep.map((_, c) => c % ps)),
  );
  keep.forEach((pos, c) => {
    layer.positions[c] = pos;
    layer.scores[c] = buffer.scores ? buffer.scores[pos] : 0;
  });
  layer.filled = keep.length;
  host.store.counters.evictedTokens += length - keep.length;
  releaseBuffer(host.store, buffer);
}

function releaseBuffer(store: PageStore, buffer: TokenPrefillBuffer): void {
  for (const s of buffer.slots) store.devicePool.release(s);
  for (const t of [...buffer.k, ...buffer.v]) store.backend.dispose(t);
  buffer.slots.length = 0;
  buffer.k.length = 0;
  buffer.v.length = 0;
}

/** Returns what an unfinished chunked prefill holds beyond its layers' pages (token buffers and cells). */
export function releaseChunked(store: PageStore, state: ChunkedPrefill): void {
  for (const buffer of state.tokens) {
    if (!buffer) continue;
    releaseBuffer(store, buffer);
    for (const c of buffer.cells) store.devicePool.release(c);
    buffer.cells = [];
  }
}
