import Fastify, { type FastifyInstance } from 'fastify';
import type { AsyncEngine, EngineStats } from '@arkvale/engine';
import { healthPlugin, type ServerState } from './health.js';
import { metricsPlugin } from './metrics/plugin.js';
import { handleRouteError, sendError } from './openai/errors.js';
import { openaiRoutes } from './openai/plugin.js';

export interface ArkvaleServerOptions {
  /** The engine, or its loading: the server answers (/health 503) before it is ready. */
  readonly engine: AsyncEngine | Promise<AsyncEngine>;
  /** Bearer token required on /v1. */
  readonly apiKey?: string;
  /** Largest request body in bytes (413 beyond). Default 1 MiB. */
  readonly bodyLimit?: number;
  readonly logger?: boolean;
}

export interface ArkvaleServer {
  readonly app: FastifyInstance;
  state(): ServerState;
  /** Resolves with the engine once loaded (rejects if loading failed). */
  readonly ready: Promise<AsyncEngine>;
  /**
   * Graceful shutdown: stop accepting, give running requests `graceMs` to finish, then
   * abort the rest and free every page. Resolves with the engine's final statistics.
   */
  shutdown(graceMs?: number): Promise<EngineStats | null>;
}

/** `arkvale serve` as a library: /health, /metrics and the OpenAI routes under /v1 around one engine. */
export function createArkvaleServer(opts: ArkvaleServerOptions): ArkvaleServer {
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: opts.bodyLimit ?? 1 << 20 });
  let engine: AsyncEngine | null = null;
  let state: ServerState = 'loading';
  const getEngine = () => engine;
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `Unknown request URL: ${req.method} ${req.url}`, null, 'unknown_url'));
  app.setErrorHandler((e, _req, reply) => handleRouteError(e as Error, reply));
  app.register(healthPlugin, { state: () => state });
  app.register(metricsPlugin, { engine: getEngine });
  app.register(openaiRoutes, { prefix: '/v1', engine: getEngine, apiKey: opts.apiKey, bodyLimit: opts.bodyLimit });
  const ready = Promise.resolve(opts.engine).then((e) => {
    engine = e;
    if (state === 'loading') state = 'ready';
    return e;
  });
  ready.catch(() => undefined);
  return {
    app,
    state: () => state,
    ready,
    shutdown: async (graceMs = 5000) => {
      state = 'stopping';
      const closed = app.close();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      const stats = engine ? await engine.close() : null;
      await closed;
      return stats;
    },
  };
}
