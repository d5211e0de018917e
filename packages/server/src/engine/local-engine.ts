import type { Backend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { LlamaEngine } from '@arkvale/model-llama';
import { EngineClient } from './engine-client.js';
import { EngineCore } from './engine-core.js';
import { clientParts, type ModelOptions } from './model-parts.js';
import type { EngineStats } from './types.js';

export interface LocalEngineOptions extends ModelOptions {
  /** Default: a new CpuBackend. */
  readonly backend?: Backend;
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
    const parts = clientParts(options);
    const backend = options.backend ?? new CpuBackend();
    const llama = await LlamaEngine.load(options.modelDir, backend);
    const eos = [...llama.model.tokenizer.eosIds, ...llama.model.config.eosTokenIds];
    let engine: LocalEngine | null = null;
    const core = new EngineCore(llama.forward, llama.model.tokenizer, parts.config, llama.geometry(parts.config.pageSize), backend, eos, (id, ev) => engine!.onCoreEvent(id, ev));
    engine = new LocalEngine(parts, backend.name, core);
    return engine;
  }

  private onCoreEvent(id: string, ev: Parameters<EngineClient['deliver']>[1]): void {
    this.deliver(id, ev);
  }

  protected sendSubmit(req: Parameters<EngineCore['enqueue']>[0]): void {
    this.core.enqueue(req);
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
    return Promise.resolve(this.core.close());
  }
}
