import type { Backend, KvGeometry } from '@arkvale/core';
import type { LlamaForward, Tokenizer } from '@arkvale/model-llama';
import { EngineError } from '../errors.js';
import { runStep, type ChunkPlan } from './batch-step.js';
import type { ResolvedEngineConfig } from './config.js';
import { Job } from './job.js';
import { PlanCaches } from './plan-caches.js';
import type { PreparedRequest } from './prepare.js';
import { sampleRows } from './sampler.js';
import { Admission } from './admission.js';
import { collectEngineStats, StepWindow } from './engine-stats.js';
import type { EngineEvent, EngineStats } from './types.js';

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
  readonly counters = { steps: 0, prefillTokens: 0, promptTokens: 0, generationTokens: 0, parks: 0, resumes: 0, finished: 0, aborted: 0, failed: 0 };
  private readonly window = new StepWindow(128);

  constructor(
    private readonly forward: LlamaForward,
    private readonly tokenizer: Tokenizer,
    private readonly config: ResolvedEngineConfig,
    geometry: KvGeometry,
    backend: Backend,
    eosIds: readonly number[],
    private readonly sink: EventSink,
  ) {
    this.caches = new PlanCaches(config, geometry, backend);
    this.admission = new Admission(this.caches.store);
    this.eos = new Set(eosIds);
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

  /** Aborts everything; returns the statistics once every page is back. */
  close(): EngineStats {
    for (const job of [...this.waiting, ...this.active.values()]) this.abort(job.id);
    return this.stats();
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

  step(): void {
    const recallsBefore = this.caches.store.counters.recalls;
    this.resumeParked();
    this.admitWaiting();
    const chunks = this.chooseChunks();
    const decoding = this.fitStep(chunks);
    if (decoding.length === 0 && chunks.length === 0) return;
    const involved = [...decoding, ...chunks.map((c) => c.job)];
    try {
      const b = this.forward.backend;
      // The step's tensors (logits, sampling) are freed before tokens are delivered.
      const { jobs, tokens } = b.tidy(() => {
        const step = runStep(this.forward, decoding, chunks, this.config.decodeBlockRows);
        const sampled = step.jobs.length > 0 ? sampleRows(b, step.logits, step.jobs.map((j) => ({ ...j.req, uniform: j.uniform }))) : [];
        return { jobs: step.jobs, tokens: sampled };
      });
      for (const c of chunks) this.counters.prefillTokens += c.count;
      jobs.forEach((job, i) => this.deliver(job, tokens[i]));
    } catch (e) {
      // Requests were checked before they were queued: a failing step is the engine's fault.
      const error = e instanceof EngineError ? e : new EngineError('engine_failed', `the engine failed a step: ${e instanceof Error ? e.message : String(e)}`);
      for (const job of involved) if (this.active.has(job.id)) this.fail(job, error);
    }
    this.counters.steps++;
    this.window.push(this.caches.store.counters.recalls - recallsBefore, this.caches.store.devicePool.bytesPerPage);
  }

  private deliver(job: Job, token: number): void {
    if (job.phase === 'prefill') job.phase = 'decode';
    const before = job.text.tokenIds.length;
    const text = job.text.accept(token, this.eos.has(token));
    if (job.text.tokenIds.length > before) {
      this.counters.generationTokens++;
      this.sink(job.id, { type: 'token', tokenId: token, text });
    }
    if (job.text.finish) {
      this.finish(job, job.text.finish, job.text.tokenIds.length > before ? '' : text);
      this.counters.finished++;
    } else {
      job.next = token;
    }
  }

  private finish(job: Job, reason: 'eos' | 'stop' | 'length' | 'abort', text: string): void {
    job.release();
    this.active.delete(job.id);
    this.sink(job.id, { type: 'done', text, finishReason: reason, usage: { promptTokens: job.req.promptIds.length, completionTokens: job.text.tokenIds.length } });
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
    while (this.waiting.length > 0 && this.active.size < this.config.maxRunning) {
      const job = this.waiting[0];
      if (!this.admission.canAdmit(job, this.jobsIn('decode'), this.jobsIn('prefill'))) return;
      this.waiting.shift();
      job.seq = job.cache!.admitChunked(job.req.promptIds.length);
      job.peakDevice = job.cache!.chunkedPrefillPeak(job.req.promptIds.length).device;
      job.phase = 'prefill';
      this.active.set(job.id, job);
      this.counters.promptTokens += job.req.promptIds.length;
    }
  }

  /** Whole chunks (boundaries at multiples of chunkTokens) of the oldest prefills, up to the step's rows. */
  private chooseChunks(): ChunkPlan[] {
    const chunks: ChunkPlan[] = [];
    let rows = 0;
    for (const job of this.jobsIn('prefill')) {
      const count = Math.min(this.config.chunkTokens, job.cache!.promptRemaining(job.seq));
      if (chunks.length > 0 && rows + count > this.config.stepTokens) break;
      chunks.push({ job, count });
      rows += count;
    }
    return chunks;
  }

  /**
   * The decoding jobs of this step, after making the step fit the pools: the newest
   * decoding sequences are parked (their pages go to the host pool), then chunks wait.
   */
  private fitStep(chunks: ChunkPlan[]): Job[] {
    let decoding = this.jobsIn('decode');
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
    for (const c of chunks) c.job.takenDevice += c.job.cache!.prefillChunkNeeds(c.job.seq, c.count).device;
    return decoding;
  }
}
