import { ArkvaleError, invalidArgument, type DecodeStep, type KvCache, type PrefillChunk, type Tensor } from '@arkvale/core';
import type { AttendRef } from './forward.js';
import type { ModelCache } from './model-cache.js';

/** The changes a ranked cache sends to ranks held elsewhere, by method name. */
export type MirroredCall =
  | 'admit'
  | 'admitChunked'
  | 'fork'
  | 'free'
  | 'park'
  | 'resume'
  | 'clearPrefixCache'
  | 'close'
  | 'beginPrefillChunk'
  | 'beginStep'
  | 'skipStep';

/**
 * The ranks of a cache that live in other threads or processes (one worker each): they
 * are sent every change, in order, and answer nothing; their passes attend through the
 * steps and chunks the changes began, named by `AttendRef`.
 */
export interface CacheMirror {
  /** This cache's number on those ranks (`AttendRef.cache`). */
  readonly cache: number;
  /** Makes the call on those ranks' caches; `handle` numbers the step or chunk a `begin` call makes there (a skipped step is named by its handle). */
  send(call: MirroredCall, args: readonly unknown[], handle?: number): void;
}

/**
 * The caches of a tensor-parallel model's ranks (docs/DESIGN.md, "Tensor parallelism")
 * as one `ModelCache`: each rank's `KvCache` holds the pages of its own KV heads, and
 * every change is made on every rank in rank order, so that sequence ids agree: on the
 * ranks held here (`ranks`), then on those held by workers (`mirror`).
 *
 * The ranks' caches share a geometry but for the heads, so they hold the same number of
 * pages: what the scheduler asks of the pools (needs, free pages, prefix hits) is rank
 * 0's answer, and so are the statistics (a rank's recalls are its own heads'). A rank
 * selects for its own heads, so the ranks' page tables may differ; their counts never do.
 *
 * A step is not replayed as a graph (`graphKey` is null): the ranks' passes stop at
 * each other's collectives.
 */
export class RankedKvCache implements ModelCache {
  /** Each decode step's and prefill chunk's own of ranks 1 and on (rank 0's is the one given out). */
  private readonly rankSteps = new WeakMap<DecodeStep, DecodeStep[]>();
  private readonly rankChunks = new WeakMap<PrefillChunk, PrefillChunk[]>();
  /** The handles the mirror's ranks know each step and chunk by. */
  private readonly handles = new WeakMap<DecodeStep | PrefillChunk, number>();
  private nextHandle = 1;

  constructor(
    readonly ranks: readonly KvCache[],
    private readonly mirror?: CacheMirror,
  ) {
    if (ranks.length < 1 || (ranks.length < 2 && !mirror)) throw invalidArgument(`a ranked cache needs two or more ranks, got ${ranks.length}`);
    const pages = ranks.map((c) => `${c.options.devicePages}/${c.options.hostPages}`);
    if (pages.some((p) => p !== pages[0])) throw invalidArgument(`the ranks' pools differ (device/host pages: ${pages.join(', ')})`);
  }

  get geometry() {
    return this.first.geometry;
  }
  get options() {
    return this.first.options;
  }
  get policy() {
    return this.first.policy;
  }
  /** Rank 0's page store: every rank's holds as many pages. */
  get store() {
    return this.first.store;
  }
  get pageSize(): number {
    return this.first.pageSize;
  }
  get sequenceIds(): number[] {
    return this.first.sequenceIds;
  }

  close(): void {
    for (const c of this.ranks) c.close();
    this.mirror?.send('close', []);
  }

  admit(promptLength: number): number {
    return this.sameId('admit', [promptLength], (c) => c.admit(promptLength));
  }
  admitChunked(promptLength: number, prompt?: readonly number[]): number {
    return this.sameId('admitChunked', [promptLength, prompt], (c) => c.admitChunked(promptLength, prompt));
  }
  fork(id: number): number {
    return this.sameId('fork', [id], (c) => c.fork(id));
  }
  free(id: number, tokens?: readonly number[]): void {
    this.each('free', [id, tokens], (c) => c.free(id, tokens));
  }
  park(id: number): number {
    return this.each('park', [id], (c) => c.park(id));
  }
  resume(id: number): number {
    return this.each('resume', [id], (c) => c.resume(id));
  }
  clearPrefixCache(): void {
    this.each('clearPrefixCache', [], (c) => c.clearPrefixCache());
  }

  prefillPeak(promptLength: number) {
    return this.first.prefillPeak(promptLength);
  }
  chunkedPrefillPeak(promptLength: number, prompt?: readonly number[]) {
    return this.first.chunkedPrefillPeak(promptLength, prompt);
  }
  prefixHit(promptLength: number, prompt: readonly number[]): number {
    return this.first.prefixHit(promptLength, prompt);
  }
  cachedTokens(id: number): number {
    return this.first.cachedTokens(id);
  }
  prefixStats() {
    return this.first.prefixStats();
  }
  promptRemaining(id: number): number {
    return this.first.promptRemaining(id);
  }
  prefillChunkNeeds(id: number, count: number) {
    return this.first.prefillChunkNeeds(id, count);
  }
  has(id: number): boolean {
    return this.first.has(id);
  }
  parkNeeds(id: number) {
    return this.first.parkNeeds(id);
  }
  resumeNeeds(id: number) {
    return this.first.resumeNeeds(id);
  }
  stepNeeds(ids: readonly number[]) {
    return this.first.stepNeeds(ids);
  }
  stats() {
    return this.first.stats();
  }

  beginPrefillChunk(id: number, count: number): PrefillChunk {
    const [chunk, ...rest] = this.all((c) => c.beginPrefillChunk(id, count));
    this.rankChunks.set(chunk, rest);
    this.sendBegun('beginPrefillChunk', [id, count], chunk);
    return chunk;
  }

  beginStep(ids: readonly number[]): DecodeStep {
    const [step, ...rest] = this.all((c) => c.beginStep(ids));
    this.rankSteps.set(step, rest);
    this.sendBegun('beginStep', [ids], step);
    return step;
  }

  /** How the mirror's ranks name what a segment attends through; undefined without a mirror (every rank is here). */
  attendRef(on: { readonly seq: number } | { readonly chunk: PrefillChunk } | { readonly step: DecodeStep }): AttendRef | undefined {
    if (!this.mirror) return undefined;
    const cache = this.mirror.cache;
    if ('seq' in on) return { cache, kind: 'prefill', seq: on.seq };
    const begun = 'chunk' in on ? on.chunk : on.step;
    const handle = this.handles.get(begun);
    if (handle === undefined) throw invalidArgument(`a ${'chunk' in on ? 'prefill chunk' : 'decode step'} this ranked cache did not begin`);
    return { cache, kind: 'chunk' in on ? 'chunk' : 'decode', handle };
  }

  graphKey(): string | null {
    return null;
  }
  canSkipForward(): boolean {
    return false;
  }
  skipStep(step: DecodeStep): void {
    this.first.skipStep(step);
    this.rankOf(this.rankSteps, step, 'decode step').forEach((s, r) => this.ranks[r + 1].skipStep(s));
    this.mirror?.send('skipStep', [], this.handles.get(step));
  }

  prefillLayer(id: number, layer: number, q: Tensor, k: Tensor, v: Tensor, scale: number, rank = 0): Tensor {
    return this.rank(rank).prefillLayer(id, layer, q, k, v, scale);
  }
  prefillChunkLayer(chunk: PrefillChunk, layer: number, q: Tensor, k: Tensor, v: Tensor, scale: number, rank = 0): Tensor {
    return this.rank(rank).prefillChunkLayer(rank === 0 ? chunk : this.rankOf(this.rankChunks, chunk, 'prefill chunk')[rank - 1], layer, q, k, v, scale);
  }
  decodeLayer(step: DecodeStep, layer: number, q: Tensor, k: Tensor, v: Tensor, scale: number, rank = 0): Tensor {
    return this.rank(rank).decodeLayer(rank === 0 ? step : this.rankOf(this.rankSteps, step, 'decode step')[rank - 1], layer, q, k, v, scale);
  }

  private get first(): KvCache {
    return this.ranks[0];
  }

  private rank(r: number): KvCache {
    const cache = this.ranks[r];
    if (!cache) throw invalidArgument(`rank ${r} of a cache of ${this.ranks.length} ranks`);
    return cache;
  }

  private rankOf<T extends object>(map: WeakMap<T, T[]>, begun: T, what: string): T[] {
    const others = map.get(begun);
    if (!others) throw invalidArgument(`a ${what} this ranked cache did not begin`);
    return others;
  }

  /**
   * `change` on every rank in order. Rank 0 checks the arguments and the pools before it
   * changes anything, and the others hold what it holds, so only a fault can stop a
   * later rank; that is reported as the ranks having diverged.
   */
  private all<T>(change: (c: KvCache) => T): T[] {
    const out = [change(this.first)];
    for (let r = 1; r < this.ranks.length; r++) {
      try {
        out.push(change(this.ranks[r]));
      } catch (e) {
        throw new ArkvaleError('INTERNAL', `tensor-parallel rank ${r}'s cache refused what rank 0's did (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    return out;
  }

  /** `change` on every rank here, then `call` sent to the mirror's ranks; rank 0's result. */
  private each<T>(call: MirroredCall, args: readonly unknown[], change: (c: KvCache) => T): T {
    const out = this.all(change)[0];
    this.mirror?.send(call, args);
    return out;
  }

  private sameId(call: MirroredCall, args: readonly unknown[], change: (c: KvCache) => number): number {
    const ids = this.all(change);
    if (ids.some((id) => id !== ids[0])) throw new ArkvaleError('INTERNAL', `${call}: the ranks' caches gave sequence ids ${ids.join(', ')}`);
    this.mirror?.send(call, args);
    return ids[0];
  }

  private sendBegun(call: MirroredCall, args: readonly unknown[], begun: DecodeStep | PrefillChunk): void {
    if (!this.mirror) return;
    const handle = this.nextHandle++;
    this.handles.set(begun, handle);
    this.mirror.send(call, args, handle);
  }
}
