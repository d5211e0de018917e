import type { FastifyPluginAsync } from 'fastify';
import { errorBody } from './openai/errors.js';

export type ServerState = 'loading' | 'ready' | 'stopping';

export interface HealthOptions {
  readonly state: () => ServerState;
  /** Route path. Default "/health". */
  readonly path?: string;
}

/** GET /health: 200 when ready, 503 with an OpenAI-shaped body while the model loads or the server stops. */
export const healthPlugin: FastifyPluginAsync<HealthOptions> = async (app, opts) => {
  app.get(opts.path ?? '/health', async (_req, reply) => {
    const state = opts.state();
    if (state === 'ready') return { status: 'ok' };
    const message = state === 'loading' ? 'the model is loading' : 'the server is shutting down';
    return reply.code(503).send(errorBody(message, 'service_unavailable', null, state === 'loading' ? 'model_loading' : 'shutting_down'));
  });
};
