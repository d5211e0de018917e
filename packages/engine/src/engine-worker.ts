import { parentPort, workerData } from 'node:worker_threads';
import type { Backend } from '@arkvale/core';
import { EngineError } from './errors.js';
import { EngineCore } from './engine-core.js';
import { describeBackend, loadBackend } from './load-backend.js';
import { loadEngineModel } from './served-model.js';
import type { FromWorker, ToWorker, WireEvent, WorkerInit } from './worker-protocol.js';

/*
 * The worker thread of WorkerEngine: it loads the weights and its own backend, runs
 * the scheduler one step per turn of its event loop, and posts each step's events in
 * one message. Messages (submit, abort, stats) are handled between steps.
 */

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker) => port.postMessage(m);

async function main(): Promise<void> {
  const warn = (text: string) => post({ type: 'log', text });
  type Factory = { createBackend(name: string, warn: (t: string) => void, options: Record<string, unknown>): Backend | Promise<Backend> };
  // A backend module of the caller's (a backend of their own), else the engine's loader.
  const backend = init.backendModule
    ? await ((await import(init.backendModule)) as Factory).createBackend(init.backend, warn, init.backendOptions)
    : await loadBackend({ backend: init.backend, dtype: init.backendOptions.dtype as string | undefined, onWarning: warn });
  const { model, pools } = await loadEngineModel(init.model, backend, init.config, init.pools, init.gpuMemoryUtilization);
  warn(`${pools.summary}\n`);
  const config = { ...init.config, devicePages: pools.devicePages, hostPages: pools.hostPages };
  let outbox: [string, WireEvent][] = [];
  const core = new EngineCore({
    forward: model.forward,
    tokenizer: model.tokenizer,
    config,
    geometry: model.geometry(config.pageSize, config.kvDtype),
    eosIds: model.eosIds,
    sink: (id, ev) => {
      outbox.push([id, ev.type === 'error' ? { type: 'error', error: ev.error.toJSON() } : ev]);
      // Events of a step go out after it; one raised between steps (a grammar that failed to compile) goes out now.
      queueMicrotask(flush);
    },
  });
  const flush = () => {
    if (outbox.length === 0) return;
    post({ type: 'events', events: outbox });
    outbox = [];
  };
  let running = false;
  const loop = () => {
    if (!core.hasWork) {
      running = false;
      return;
    }
    core.step();
    flush();
    setImmediate(loop);
  };
  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'submit':
        // All of one message before the next step: choices that share a prompt find their first one still prefilling.
        for (const request of m.requests) {
          try {
            core.enqueue(request);
          } catch (e) {
            const error = e instanceof EngineError ? e : new EngineError('engine_failed', String(e));
            outbox.push([request.id, { type: 'error', error: error.toJSON() }]);
          }
        }
        if (!running) {
          running = true;
          setImmediate(loop);
        }
        break;
      case 'abort':
        core.abort(m.id);
        break;
      case 'stats':
        post({ type: 'stats', ticket: m.ticket, stats: core.stats() });
        break;
      case 'close': {
        const stats = core.close();
        core.release();
        flush();
        post({ type: 'closed', stats });
        port.close();
        return;
      }
    }
    flush();
  });
  post({ type: 'ready', backend: describeBackend(backend, init.model.tensorParallel), devicePages: config.devicePages, hostPages: config.hostPages });
}

main().catch((e: unknown) => post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) }));
