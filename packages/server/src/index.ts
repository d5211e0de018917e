// What speaks HTTP, over an engine it is given (@arkvale/engine makes one).
export { openaiRoutes } from './openai/plugin.js';
export type { OpenAiRoutesOptions } from './openai/plugin.js';
export { errorBody, sendError } from './openai/errors.js';
export type { OpenAiErrorBody } from './openai/errors.js';
export { metricsPlugin } from './metrics/plugin.js';
export type { MetricsOptions } from './metrics/plugin.js';
export { healthPlugin } from './health.js';
export type { HealthOptions, ServerState } from './health.js';
export { createArkvaleServer } from './server.js';
export type { ArkvaleServer, ArkvaleServerOptions } from './server.js';
