import type { KvGeometry, PoolNeeds } from '@arkvale/core';
import type { ModelCache, ModelForward, Tokenizer } from '@arkvale/model-llama';
import { EngineError } from './errors.js';
import { runStep, type ChunkPlan, type ProductBlocks, type StepResult } from './batch-step.js';
import { prefillsOneShot, type ResolvedEngineConfig } from './config.js';
import { Job } from './job.js';
import { PlanCaches } from './plan-caches.js';
import type { PreparedRequest } from './prepare.js';
import type { PositionLogprobs } from './logprobs.js';
import { drawRows } from './sampler.js';
import { sampleStep, scorePrompts, tokenLogprobs } from './step-sampling.js';
import { TokenFeed, type HeldStep } from './token-feed.js';
import { GrammarCompilerCache } from './output-constraint.js';
import { Admission } from './admission.js';
import { collectEngineStats, StepWindow } from './engine-stats.js';
import type { EngineEvent, EngineStats, FinishReason } from './types.js';

/** What one step ran. */
export interface StepReport {
  /** Prompt tokens prefilled. */
  readonly prefillTokens: number;
  /** Sequences that decoded a token, of which `suffixRows` fed a suffix token (teacher-forced). */
  readonly decodeRows: number;
  readonly suffixRows: number;
  /** The step took its token ids from the step before it, on the device, and was issued before they were read (overlapped steps). */
  readonly overlapped: boolean;
}

export interface EngineCoreInit {
  readonly forward: ModelForward;
  /** null: a model of token ids only (random weights at a model shape): events carry no text. */
  readonly tokenizer: Tokenizer | null;
  readonly config: ResolvedEngineConfig;
  /** The KV geometry of every plan's cache (pages in the backend's dtype: LlamaEngine.geometry). */
  readonly geometry: KvGeometry;
  /** Tokens that end a sequence (eosIds of the model). */
  readonly eosIds: readonly number[];
  /** Where each request's events go. */
  readonly sink: EventSink;
  /** The default plan's cache, made by the caller (an offline run sizes its pools for its batch); default: one made from the config's pools. */
  readonly cache?: ModelCache;
}

/** Where the core delivers a request's events (an error ends the request like a done event). */
export type EventSink = (id: string, event: EngineEvent | { readonly type: 'error'; readonly error: EngineError }) => void;

/**
 * The scheduler and the model, synchronous: `step()` runs one iteration of continuous
 * batching. Whoever drives it (an event loop on this thread, or a worker) calls
 * `step()` while `hasWork`, and handles `enqueue` / `abort` between steps.
 *
 * Each step: resume parked sequences that fit again (oldest first), admit waiting
 * requests first come first served while their prefill peak fits, choose whole
 * prefill chunks up to the step's row budget, park the newest decoding sequences while
 * the step would not fit the pools, then run one forward pass for all of it.
 */
export class EngineCore {
  private readonly waiting: Job[] = [];
  /** Admitted jobs (prefill, decode, parked), in arrival order. */
  private readonly active = new Map<string, Job>();
  private readonly caches: PlanCaches;
  private readonly admission: Admission;
  private readonly eos: Set<number>;
  private arrivals = 0;
  readonly counters = {
    steps: 0,
    decodeSteps: 0,
    decodeStepMs: 0,
    decodeStepRows: 0,
    graphReplayedSteps: 0,
    graphDirectSteps: 0,
    overlappedSteps: 0,
    prefillTokens: 0,
    promptTokens: 0,
    generationTokens: 0,
    parks: 0,
    resumes: 0,
    /** Requests that forked the prefilled sequence of another with the same prompt (sharePromptWith). */
    forks: 0,
    finished: 0,
    aborted: 0,
    failed: 0,
  };
  private readonly window = new StepWindow(128);
  /** How the step's rows go through the matrix products (batch invariance). */
  private readonly products: ProductBlocks;
  /** The vocabulary compiled for constrained output, made at the first such request (null: no tokenizer). */
  private readonly grammars: GrammarCompilerCache | null;
  /** Decode steps run one ahead of their tokens' delivery (EngineConfig.overlapSteps): null when off. */
  private readonly feed: TokenFeed | null;

  private readonly forward: ModelForward;
  private readonly tokenizer: Tokenizer | null;
  private readonly config: ResolvedEngineConfig;
  private readonly sink: EventSink;

  constructor(init: EngineCoreInit) {
    this.forward = init.forward;
    this.tokenizer = init.tokenizer;
    this.config = init.config;
    this.sink = init.sink;
    this.caches = new PlanCaches(init.config, init.geometry, init.forward, init.cache);
    this.admission = new Admission(this.caches.store);
    this.eos = new Set(init.eosIds);
    this.products = productBlocks(init.config, init.forward);
    this.grammars = init.tokenizer ? new GrammarCompilerCache(init.tokenizer, init.forward.config.vocabSize, init.eosIds) : null;
    this.feed = overlapsSteps(init.config, init.forward) ? new TokenFeed(init.forward.backend) : null;
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.active.size > 0;
  }

  enqueue(req: PreparedRequest): void {
    if (this.active.has(req.id) || this.waiting.some((j) => j.id === req.id)) {
      throw new EngineError('invalid_request', `a request with id "${req.id}" is already in flight`, 'id');
    }
    if (this.waiting.length >= this.config.maxWaiting) {
      throw new EngineError('queue_full', `the engine queue is full (${this.config.maxWaiting} requests waiting); retry later`);
    }
    const job = new Job(req, this.arrivals++, this.tokenizer);
    job.cache = this.caches.get(req.policy, req.budgetTokens);
    this.waiting.push(job);
    if (req.constraint) this.compileConstraint(job);
  }

  /** Compiles a request's grammar in the background; it is admitted once its first mask is known, refused if the grammar cannot be built. */
  private compileConstraint(job: Job): void {
    if (!this.grammars) throw new EngineError('invalid_request', 'this model has no tokenizer, so it cannot hold its output to JSON', 'response_format');
    this.grammars.matcher(job.req.constraint!).then(
      (out) => {
        if (this.waiting.includes(job)) job.constraint = out;
        else out.dispose();
      },
      (e: unknown) => {
        const i = this.waiting.indexOf(job);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        this.counters.failed++;
        this.sink(job.id, { type: 'error', error: e instanceof EngineError ? e : new EngineError('engine_failed', String(e)) });
      },
    );
  }

  /** Ends a request now and frees its pages. */
  abort(id: string): boolean {
    const i = this.waiting.findIndex((j) => j.id === id);
    const job = i >= 0 ? this.waiting.splice(i, 1)[0] : this.active.get(id);
    if (!job) return false;
    this.finish(job, 'abort', '');
    this.counters.aborted++;
    return true;
  }

  /** Aborts everything and empties the prefix caches; returns the statistics once every page is back. */
  close(): EngineStats {
    for (const job of [...this.waiting, ...this.active.values()]) this.abort(job.id);
    // Tokens held for aborted jobs are dropped, with the tensor that held them (a later step makes another).
    this.feed?.dispose();
    for (const cache of this.caches.all()) cache.clearPrefixCache();
    return this.stats();
  }

  /** After close: returns the pools' memory and the model's weights to the backend, and its cached memory to the device. The core is unusable afterwards. */
  release(): void {
    this.feed?.dispose();
    this.caches.close();
    this.forward.dispose();
    this.forward.backend.releaseCached?.();
  }

  stats(): EngineStats {
    const jobs = [...this.active.values()];
    return collectEngineStats({
      waiting: this.waiting.length,
      running: jobs.filter((j) => j.phase !== 'parked').length,
      prefilling: jobs.filter((j) => j.phase === 'prefill').length,
      parked: jobs.filter((j) => j.phase === 'parked').length,
      caches: this.caches.entries(),
      counters: this.counters,
      window: this.window,
    });
  }

  /** Runs one iteration; says what ran (nothing when no work fits yet). */
  step(): StepReport {
    const start = performance.now();
    const recallsBefore = this.caches.store.counters.recalls;
    this.resumeParked();
    this.admitWaiting();
    const chunks = this.chooseChunks();
    let decoding = this.fitStep(chunks);
    // A decode-only step of the held step's jobs (or some of them) takes its tokens from the device; any other step needs them on the host first.
    const fed = this.feed !== null && chunks.length === 0 && this.feed.feeds(decoding);
    const held = fed ? null : (this.feed?.take() ?? null);
    if (held) {
      try {
        this.deliverHeld(held);
      } catch (e) {
        for (const job of held.jobs) this.failIfActive(job, stepError(e));
      }
      // A job the held token ended (or that failed) has no row in this step.
      decoding = decoding.filter((j) => this.active.get(j.id) === j);
    }
    const report: StepReport = {
      prefillTokens: chunks.reduce((n, c) => n + c.count, 0),
      decodeRows: decoding.length,
      suffixRows: decoding.filter((j) => j.nextIsSuffix).length,
      overlapped: fed,
    };
    if (decoding.length === 0 && chunks.length === 0) return report;
    // A step fed from the held one takes its tokens with it: a failure loses them, those of held jobs that sit this step out too.
    const involved = [...decoding, ...chunks.map((c) => c.job), ...(fed ? this.feed!.heldJobs : [])];
    const [replayedBefore, directBefore] = this.replayedGraphs();
    try {
      const b = this.forward.backend;
      // The step's tensors (logits, sampling) are freed before tokens are delivered.
      const { jobs, tokens, logprobs, previous } = b.tidy(() => {
        const step = this.withForks(runStep(this.forward, decoding, chunks, this.products, fed ? this.feed!.tokensFor(decoding) : undefined));
        // Its tokens stay on the device for the next step when nothing of the step needs them on the host now.
        if (this.feed && chunks.length === 0 && this.holds(step, fed)) {
          const ids = drawRows(
            b,
            step.logits,
            step.jobs.map((j) => ({ ...j.req, uniform: j.uniform })),
          );
          return { jobs: step.jobs, tokens: null, logprobs: [], previous: this.feed.hold(ids, decoding, step.jobs) };
        }
        const previous = fed ? this.feed!.take() : null;
        scorePrompts(b, step);
        const tokens = sampleStep(b, step);
        return { jobs: step.jobs, tokens, logprobs: tokenLogprobs(b, step, tokens), previous };
      });
      for (const c of chunks) this.counters.prefillTokens += c.count;
      // The step before this one (fed from the device) is delivered first: the device ran this one meanwhile.
      if (previous) this.deliverHeld(previous);
      if (tokens) this.deliverTokens(jobs, tokens, logprobs);
    } catch (e) {
      // Requests were checked before they were queued: a failing step is the engine's fault.
      this.feed?.take();
      for (const job of involved) this.failIfActive(job, stepError(e));
    }
    this.counters.steps++;
    if (chunks.length === 0) {
      this.counters.decodeSteps++;
      this.counters.decodeStepMs += performance.now() - start;
      this.counters.decodeStepRows += decoding.length;
      const [replayed, direct] = this.replayedGraphs();
      if (replayed > replayedBefore) this.counters.graphReplayedSteps++;
      if (direct > directBefore) this.counters.graphDirectSteps++;
      if (fed) this.counters.overlappedSteps++;
    }
    this.window.push(this.caches.store.counters.recalls - recallsBefore, this.caches.store.devicePool.bytesPerPage);
    return report;
  }

  /**
   * Whether a decode step's tokens may stay on the device (TokenFeed): every row drawn
   * (greedy or sampled) free of a grammar, logprobs and suffix tokens, and not its
   * request's last token by count (a step after it will run unless the token ends the
   * request). `fed`: the step before it is still held, one token more than each job has
   * delivered.
   */
  private holds(step: StepResult, fed: boolean): boolean {
    if (step.promptRows.length > 0) return false;
    const ahead = fed ? 2 : 1;
    return step.jobs.every((j) => j.req.constraint === null && j.req.logprobs === null && !j.hasSuffixLeft && j.text.tokenIds.length + ahead < j.req.maxTokens);
  }

  /** A held step's tokens, read (waiting for the device if they are not there yet) and delivered. */
  private deliverHeld(held: HeldStep): void {
    const tokens = held.read.get();
    this.deliverTokens(held.jobs, Array.from(tokens), []);
  }

  /** Each row's token to its job; a job that ended meanwhile (its row ran one step ahead of its end) gets nothing. */
  private deliverTokens(jobs: readonly Job[], tokens: readonly number[], logprobs: readonly (PositionLogprobs | undefined)[]): void {
    jobs.forEach((job, i) => {
      if (this.active.get(job.id) !== job) return;
      if (job.req.maxTokens === 0) this.finishScored(job);
      else if (tokens[i] < 0) this.feedSuffix(job);
      else this.deliver(job, tokens[i], logprobs[i]);
    });
  }

  private failIfActive(job: Job, error: EngineError): void {
    if (this.active.get(job.id) === job) this.fail(job, error);
  }

  /**
   * Requests waiting to share the prompt of one whose prefill ended this step fork its
   * sequence now, when the pools allow: their rows are the prefilled one's logits again
   * (gathered), so each samples its first token from them with its own seed.
   */
  private withForks(step: StepResult): StepResult {
    const forked: { job: Job; row: number }[] = [];
    step.jobs.forEach((leader, row) => {
      if (leader.phase !== 'prefill' || leader.req.suffixIds.length > 0 || leader.req.maxTokens === 0) return;
      for (const job of this.waiting.filter((w) => w.req.sharePromptWith === leader.id)) {
        if (job.cache !== leader.cache || !samePrompt(job, leader) || !job.sampleable || this.active.size >= this.config.maxRunning) continue;
        try {
          job.seq = leader.cache!.fork(leader.seq);
        } catch {
          continue; // No room to fork now: it prefills on its own when admitted.
        }
        this.waiting.splice(this.waiting.indexOf(job), 1);
        job.phase = 'prefill';
        this.active.set(job.id, job);
        this.counters.promptTokens += job.req.promptIds.length;
        this.counters.forks++;
        forked.push({ job, row });
      }
    });
    if (forked.length === 0) return step;
    const b = this.forward.backend;
    const rows = [...step.jobs.map((_, i) => i), ...forked.map((f) => f.row)];
    const rest = step.promptRows.reduce((n, p) => n + p.count, 0);
    for (let i = 0; i < rest; i++) rows.push(step.jobs.length + i);
    return {
      logits: b.gatherRows(step.logits, b.fromArray(rows, [rows.length], 'i32')),
      jobs: [...step.jobs, ...forked.map((f) => f.job)],
      promptRows: step.promptRows,
    };
  }

  /** A prompt scored alone (max_tokens 0): done once its last chunk ran, with nothing generated. */
  private finishScored(job: Job): void {
    this.counters.finished++;
    this.finish(job, 'length', '');
  }

  /** Steps the backend has replayed as graphs (the CUDA backend's graphStats), 0 on a backend without graphs. */
  /** The backend's graph replays so far, and those without the forward pass (direct). */
  private replayedGraphs(): [number, number] {
    const stats = (this.forward.backend as { graphStats?: { replayed: number; direct?: number } }).graphStats;
    return [stats?.replayed ?? 0, stats?.direct ?? 0];
  }

  private feedSuffix(job: Job): void {
    if (job.phase === 'prefill') job.phase = 'decode';
    job.feedSuffix();
  }

  private deliver(job: Job, token: number, logprobs?: PositionLogprobs): void {
    if (job.phase === 'prefill') job.phase = 'decode';
    job.constraint?.accept(token);
    const before = job.text.tokenIds.length;
    const text = job.text.accept(token, this.eos.has(token));
    if (job.text.tokenIds.length > before) {
      this.counters.generationTokens++;
      const first = before === 0 && job.req.promptLogprobs !== null ? { promptLogprobs: job.promptLogprobs } : {};
      this.sink(job.id, { type: 'token', tokenId: token, text, ...(logprobs ? { logprobs } : {}), ...first });
    }
    if (!job.text.finish && job.constraint?.done) {
      // The grammar took its end, which a request that ignores end of sequence would run past.
      this.counters.finished++;
      this.finish(job, 'stop', '');
    } else if (job.text.finish) {
      this.counters.finished++;
      this.finish(job, job.text.finish, job.text.tokenIds.length > before ? '' : text);
    } else {
      job.next = token;
      job.nextIsSuffix = false;
    }
  }

  /** Ends a job; its done event goes out while its pages are still held (an offline run reads the cache's statistics then). */
  private finish(job: Job, reason: FinishReason, text: string): void {
    this.active.delete(job.id);
    this.sink(job.id, {
      type: 'done',
      text,
      finishReason: reason,
      usage: { promptTokens: job.req.promptIds.length, completionTokens: job.text.tokenIds.length, cachedTokens: job.cachedTokens },
      ...(job.req.promptLogprobs !== null && reason !== 'abort' ? { promptLogprobs: job.promptLogprobs } : {}),
    });
    job.release(true);
  }

  private fail(job: Job, error: EngineError): void {
    job.release();
    this.active.delete(job.id);
    this.counters.failed++;
    this.sink(job.id, { type: 'error', error });
  }

  private jobsIn(phase: Job['phase']): Job[] {
    return [...this.active.values()].filter((j) => j.phase === phase);
  }

  /** Parked sequences come back first come first served, when their pages and a step's worth fit. */
  private resumeParked(): void {
    for (const job of this.jobsIn('parked')) {
      if (!this.admission.canResume(job, this.jobsIn('decode'), this.jobsIn('prefill'))) return;
      job.cache!.resume(job.seq);
      job.phase = 'decode';
      this.counters.resumes++;
    }
  }

  /** Waiting requests are admitted in order while their prefill peak fits; parked ones go first. */
  private admitWaiting(): void {
    if (this.jobsIn('parked').length > 0) return;
    for (let i = 0; i < this.waiting.length && this.active.size < this.config.maxRunning; ) {
      const job = this.waiting[i];
      // One that shares a prompt waits for its prefill (withForks), one whose grammar is not
      // compiled yet waits for it; either lets the others by.
      if (this.awaitsShare(job) || !job.sampleable) {
        i++;
        continue;
      }
      const length = job.req.promptIds.length;
      const prompt = job.cacheablePrompt;
      // A prompt that starts from the prefix cache prefills its rest in chunks (one chunk when one-shot).
      job.oneShot = this.oneShot && !(prompt && job.cache!.prefixHit(length, prompt) > 0);
      const peak = this.prefillPeak(job);
      if (!this.admission.canAdmit(job.cache!, peak, this.jobsIn('decode'), this.jobsIn('prefill'))) return;
      this.waiting.splice(i, 1);
      job.seq = job.oneShot ? job.cache!.admit(length) : job.cache!.admitChunked(length, prompt);
      job.cachedTokens = job.cache!.cachedTokens(job.seq);
      job.peakDevice = peak.device;
      job.phase = 'prefill';
      this.active.set(job.id, job);
      this.counters.promptTokens += job.req.promptIds.length;
    }
  }

  /** Whether a waiting job shares the prompt of a request still waiting or prefilling (it forks that one's sequence once prefilled). */
  private awaitsShare(job: Job): boolean {
    const id = job.req.sharePromptWith;
    if (id === null) return false;
    const leader = this.active.get(id) ?? this.waiting.find((w) => w.id === id);
    return leader !== undefined && leader.phase !== 'decode' && leader.phase !== 'parked' && leader.cache === job.cache && samePrompt(job, leader);
  }

  private get oneShot(): boolean {
    return prefillsOneShot(this.config, this.forward.backend);
  }

  /** The most a job's prefill holds at once (beyond the cached pages it starts from). */
  private prefillPeak(job: Job): PoolNeeds {
    const length = job.req.promptIds.length;
    return job.oneShot ? job.cache!.prefillPeak(length) : job.cache!.chunkedPrefillPeak(length, job.cacheablePrompt);
  }

  /**
   * The oldest prefills' next pieces, up to the step's rows (at least one): whole
   * chunks (boundaries at multiples of chunkTokens, also after a cached prefix), or
   * whole prompts (their uncached rest) when one-shot.
   */
  private chooseChunks(): ChunkPlan[] {
    const chunks: ChunkPlan[] = [];
    let rows = 0;
    for (const job of this.jobsIn('prefill')) {
      const length = job.req.promptIds.length;
      const remaining = job.oneShot ? length : job.cache!.promptRemaining(job.seq);
      const toBoundary = this.config.chunkTokens - ((length - remaining) % this.config.chunkTokens);
      const count = this.oneShot ? remaining : Math.min(toBoundary, remaining);
      if (chunks.length > 0 && rows + count > this.config.stepTokens) break;
      chunks.push({ job, count, oneShot: job.oneShot, needs: job.prefillNeeds(count) });
      rows += count;
    }
    return chunks;
  }

  /**
   * The decoding jobs of this step, after making the step fit the pools: the newest
   * decoding sequences are parked (their pages go to the host pool), then chunks wait.
   */
  private fitStep(chunks: ChunkPlan[]): Job[] {
    // A constrained sequence whose next mask is still being computed sits this step out.
    let decoding = this.jobsIn('decode').filter((j) => j.sampleable);
    for (;;) {
      const short = this.admission.shortfall(decoding, chunks);
      if (!short) break;
      const victim = [...decoding].reverse().find((j) => this.admission.canPark(j));
      if (victim && (decoding.length > 1 || chunks.length === 0)) {
        victim.cache!.park(victim.seq);
        victim.phase = 'parked';
        this.counters.parks++;
        decoding = decoding.filter((j) => j !== victim);
      } else if (chunks.length > 0) {
        chunks.pop();
      } else if (decoding.length > 0) {
        const last = decoding[decoding.length - 1];
        this.fail(last, new EngineError('engine_failed', `the KV pools cannot hold this request any more (${short} pool short)`));
        decoding = decoding.slice(0, -1);
      } else {
        break;
      }
    }
    for (const c of chunks) c.job.takenDevice += c.needs.device;
    return decoding;
  }
}

/**
 * The step's product blocks: the configured decode rows per block, else the backend's
 * (Backend.invariantProducts, 8 without one); padded where the backend picks kernels
 * by shape, decode blocks to their rows and prefill chunks to the chunk size (so that a
 * prompt's rest after a cached prefix meets the kernels of the uncached prompt's chunk),
 * with the padding's zero rows made once, here.
 */
function productBlocks(config: ResolvedEngineConfig, forward: ModelForward): ProductBlocks {
  const hint = forward.backend.invariantProducts;
  const blockRows = config.decodeBlockRows ?? hint?.rows ?? 8;
  const pad = blockRows > 0 && hint?.pad === true;
  // A chunk larger than the MLP's row limit runs in pieces: padding it would gain nothing.
  const chunkRows = pad && config.chunkTokens <= forward.mlpChunkRows ? config.chunkTokens : 0;
  if (pad) forward.reservePadding(Math.max(blockRows, chunkRows));
  return { blockRows, pad, chunkRows };
}

/** A step's failure as the requests in it see it. */
function stepError(e: unknown): EngineError {
  return e instanceof EngineError
    ? e
    : new EngineError('engine_failed', `the engine failed a step: ${e instanceof Error ? e.message : String(e)}`, null, { cause: e });
}

/**
 * Whether decode steps run one step ahead of their tokens' delivery: the config's
 * choice, else on where the backend replays steps (a GPU's: its host issues the next
 * step while the device runs this one; a host backend has nothing to overlap). It needs
 * a forward pass on one backend (stepInputs) and Backend.copyInto.
 */
function overlapsSteps(config: ResolvedEngineConfig, forward: ModelForward): boolean {
  const b = forward.backend;
  return (config.overlapSteps ?? b.graphStep !== undefined) && b.copyInto !== undefined && forward.stepInputs !== undefined;
}

function samePrompt(a: Job, b: Job): boolean {
  const x = a.req.promptIds;
  const y = b.req.promptIds;
  return x.length === y.length && x.every((t, i) => t === y[i]);
}
