import { Worker } from 'node:worker_threads';
import { EngineError } from './errors.js';
import { EngineClient } from './engine-client.js';
import { clientParts, type ClientParts, type ModelOptions } from './model-parts.js';
import type { PreparedRequest } from './prepare.js';
import type { EngineStats } from './types.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

export interface WorkerEngineOptions extends ModelOptions {
  /** The backend the worker loads (loadBackend): auto | cuda | cpu | reference. Default "cpu". */
  readonly backend?: string;
  /** CUDA's dtype (loadBackend's `dtype`). */
  readonly dtype?: string;
  /**
   * A backend of your own: the URL of a module exporting `createBackend(name, warn, options)`,
   * imported in the worker (backends hold native state that does not cross threads).
   */
  readonly backendModule?: string;
  /** That factory's options (structured-cloneable). */
  readonly backendOptions?: Record<string, unknown>;
  /** Share of a GPU's memory the engine may use. Default 0.9. */
  readonly gpuMemoryUtilization?: number;
  /** Where the worker's warnings go. Default: stderr. */
  readonly onLog?: (text: string) => void;
}

/** The worker script beside this file; from the TypeScript sources (tests), the built one. */
function workerScript(): URL {
  const ts = import.meta.url.endsWith('.ts');
  return new URL(ts ? '../dist/engine-worker.js' : './engine-worker.js', import.meta.url);
}

/**
 * The engine in a worker thread: the scheduler and every kernel run there, so the
 * caller's event loop (HTTP parsing, SSE writes, /health) never waits for a step.
 * Requests are checked and tokenized here, on the caller's thread, so errors come
 * back at once; tokens come back one message per step.
 */
export class WorkerEngine extends EngineClient {
  private readonly pendingStats = new Map<number, (s: EngineStats) => void>();
  private ticket = 0;
  private closed: Promise<EngineStats> | null = null;
  private onClosed: ((s: EngineStats) => void) | null = null;
  private dead = false;

  private constructor(
    parts: ClientParts,
    backend: string,
    private readonly worker: Worker,
  ) {
    super(parts.info(backend), parts.config, parts.planner, parts.chat);
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.die(`the engine worker failed: ${e.message}`));
    worker.on('exit', () => this.die('the engine worker exited'));
  }

  static async start(options: WorkerEngineOptions): Promise<WorkerEngine> {
    const parts = clientParts(options);
    const log = options.onLog ?? ((t: string) => process.stderr.write(t));
    const worker = new Worker(workerScript(), {
      workerData: {
        model: { ...(options.shape !== undefined ? { shape: options.shape } : { modelDir: parts.source }), tensorParallel: options.tensorParallel },
        backend: options.backend ?? 'cpu',
        backendModule: options.backendModule ?? null,
        backendOptions: options.backendModule ? (options.backendOptions ?? {}) : { dtype: options.dtype },
        gpuMemoryUtilization: options.gpuMemoryUtilization ?? 0.9,
        config: parts.config,
        pools: { devicePages: options.devicePages, hostPages: options.hostPages },
      } satisfies WorkerInit,
    });
    const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'log') log(m.text);
        else if (m.type === 'ready') done(() => resolve(m));
        else if (m.type === 'fatal') done(() => reject(new Error(`the engine worker could not start: ${m.message}`)));
      };
      const onError = (e: Error) => done(() => reject(e));
      const done = (f: () => void) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        f();
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    // Requests are planned against the pools the worker chose.
    const engine = new WorkerEngine(parts.withPools(ready.devicePages, ready.hostPages), ready.backend, worker);
    worker.on('message', (m: FromWorker) => m.type === 'log' && log(m.text));
    return engine;
  }

  private post(m: ToWorker): void {
    if (this.dead) throw new EngineError('engine_failed', 'the engine worker is not running');
    this.worker.postMessage(m);
  }

  protected sendSubmit(reqs: readonly PreparedRequest[]): void {
    this.post({ type: 'submit', requests: reqs });
  }

  protected sendAbort(id: string): void {
    if (!this.dead) this.post({ type: 'abort', id });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'events') {
      for (const [id, ev] of m.events) this.deliver(id, ev.type === 'error' ? { type: 'error', error: EngineError.fromJSON(ev.error) } : ev);
    } else if (m.type === 'stats') {
      this.pendingStats.get(m.ticket)?.(m.stats);
      this.pendingStats.delete(m.ticket);
    } else if (m.type === 'closed') {
      this.onClosed?.(m.stats);
    }
  }

  private die(message: string): void {
    if (this.dead) return;
    this.dead = true;
    this.closing = true;
    this.failAll(new EngineError('engine_failed', message));
  }

  stats(): Promise<EngineStats> {
    const ticket = ++this.ticket;
    return new Promise((resolve, reject) => {
      if (this.dead) return reject(new EngineError('engine_failed', 'the engine worker is not running'));
      this.pendingStats.set(ticket, resolve);
      this.post({ type: 'stats', ticket });
    });
  }

  close(): Promise<EngineStats> {
    if (this.closed) return this.closed;
    this.closing = true;
    this.closed = new Promise<EngineStats>((resolve, reject) => {
      if (this.dead) return reject(new EngineError('engine_failed', 'the engine worker is not running'));
      this.onClosed = resolve;
      this.post({ type: 'close' });
    }).then(async (stats) => {
      this.dead = true;
      await this.worker.terminate();
      return stats;
    });
    return this.closed;
  }
}
