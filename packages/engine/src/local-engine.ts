import type { Backend } from '@arkvale/core';
import { describeBackend, loadBackend, type BackendName } from './load-backend.js';
import { loadEngineModel } from './served-model.js';
import { EngineClient } from './engine-client.js';
import { asEngineError } from './errors.js';
import { EngineCore } from './engine-core.js';
import { clientParts, type ModelOptions } from './model-parts.js';
import type { EngineStats } from './types.js';

export interface LocalEngineOptions extends ModelOptions {
  /** A backend, or the name loadBackend takes. Default "cpu". */
  readonly backend?: Backend | BackendName;
  /** Share of a GPU's memory the engine may use. Default 0.9. */
  readonly gpuMemoryUtilization?: number;
}

/**
 * The engine on this thread: the scheduler runs one step per turn of the event loop
 * (setImmediate between steps), so I/O is served between steps but waits for a step.
 * Simple to embed and to test; `WorkerEngine` keeps the caller's thread free.
 */
export class LocalEngine extends EngineClient {
  private running = false;
  private idle: (() => void)[] = [];

  private constructor(
    parts: ReturnType<typeof clientParts>,
    backendName: string,
    /** The scheduler itself (tests and embedders may read it; drive it only through this engine). */
    readonly core: EngineCore,
  ) {
    super(parts.info(backendName), parts.config, parts.planner, parts.chat);
  }

  static async load(options: LocalEngineOptions): Promise<LocalEngine> {
    let parts = clientParts(options);
    const given = options.backend ?? 'cpu';
    const backend = typeof given === 'string' ? await loadBackend({ backend: given }) : given;
    const { model, pools } = await loadEngineModel(options, backend, parts.config, options, options.gpuMemoryUtilization ?? 0.9);
    parts = parts.withPools(pools.devicePages, pools.hostPages);
    let engine: LocalEngine | null = null;
    const core = new EngineCore({
      forward: model.forward,
      tokenizer: model.tokenizer,
      config: parts.config,
      geometry: model.geometry(parts.config.pageSize, parts.config.kvDtype),
      eosIds: model.eosIds,
      sink: (id, ev) => engine!.onCoreEvent(id, ev),
    });
    engine = new LocalEngine(parts, describeBackend(backend, options.tensorParallel), core);
    return engine;
  }

  private onCoreEvent(id: string, ev: Parameters<EngineClient['deliver']>[1]): void {
    this.deliver(id, ev);
  }

  protected sendSubmit(reqs: readonly Parameters<EngineCore['enqueue']>[0][]): void {
    // A request the scheduler refuses (its queue full) ends with an error; the others stay queued.
    for (const req of reqs) {
      try {
        this.core.enqueue(req);
      } catch (e) {
        queueMicrotask(() => this.deliver(req.id, { type: 'error', error: asEngineError(e) }));
      }
    }
    if (!this.running) {
      this.running = true;
      setImmediate(this.loop);
    }
  }

  protected sendAbort(id: string): void {
    this.core.abort(id);
  }

  private readonly loop = (): void => {
    if (!this.core.hasWork) {
      this.running = false;
      for (const f of this.idle.splice(0)) f();
      return;
    }
    this.core.step();
    setImmediate(this.loop);
  };

  /** Resolves when nothing is queued or running. */
  whenIdle(): Promise<void> {
    return this.running ? new Promise((r) => this.idle.push(r)) : Promise.resolve();
  }

  stats(): Promise<EngineStats> {
    return Promise.resolve(this.core.stats());
  }

  close(): Promise<EngineStats> {
    this.closing = true;
    const stats = this.core.close();
    this.core.release();
    return Promise.resolve(stats);
  }
}
