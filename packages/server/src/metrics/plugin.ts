import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AsyncEngine, EngineStats } from '@arkvale/engine';

export interface MetricsOptions {
  /** The engine, or a getter that returns null while it loads (gauges then read 0). */
  readonly engine: AsyncEngine | (() => AsyncEngine | null);
  /** A registry of your own; default a fresh one (never the global registry). */
  readonly registry?: Registry;
  /** Route path. Default "/metrics". */
  readonly path?: string;
}

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

/**
 * Prometheus metrics of an engine (prom-client), named as serving engines name them
 * (`arkvale:num_requests_running`, ...), plus the KV cache's own: pages in use per
 * pool, recalls and recalled bytes (totals and per step), parked sequences.
 * Latencies are timed where the engine's events are consumed.
 */
export const metricsPlugin: FastifyPluginAsync<MetricsOptions> = async (app, opts) => {
  const getEngine = typeof opts.engine === 'function' ? opts.engine : () => opts.engine as AsyncEngine;
  const registry = opts.registry ?? new Registry();
  // One stats() per scrape, however many metrics read it.
  let pending: Promise<EngineStats | null> | null = null;
  const stats = (): Promise<EngineStats | null> => {
    pending ??= (getEngine()?.stats() ?? Promise.resolve(null)).catch(() => null).finally(() => setImmediate(() => (pending = null)));
    return pending;
  };
  const gauge = (name: string, help: string, read: (s: EngineStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const s = await stats();
        this.set(s ? read(s) : 0);
      },
    });
  const total = (name: string, help: string, read: (s: EngineStats) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      async collect() {
        const s = await stats();
        this.reset();
        this.inc(s ? read(s) : 0);
      },
    });

  gauge('arkvale:num_requests_running', 'Requests admitted and on the device (prefilling or decoding).', (s) => s.running);
  gauge('arkvale:num_requests_waiting', 'Requests waiting for admission.', (s) => s.waiting);
  gauge('arkvale:num_requests_parked', 'Sequences parked in the host pool, to be resumed by recall.', (s) => s.parked);
  gauge('arkvale:kv_device_pages_used', 'Device KV pages in use.', (s) => s.devicePages.used);
  gauge('arkvale:kv_device_pages_total', 'Device KV pool size in pages.', (s) => s.devicePages.capacity);
  gauge('arkvale:kv_host_pages_used', 'Host KV pages in use (backups, parked sequences).', (s) => s.hostPages.used);
  gauge('arkvale:kv_host_pages_total', 'Host KV pool size in pages.', (s) => s.hostPages.capacity);
  gauge('arkvale:kv_recalls_per_step', 'Pages recalled from the host per engine step (mean of the last steps).', (s) => s.recallsPerStep);
  gauge('arkvale:kv_recall_bytes_per_step', 'Bytes recalled from the host per engine step (mean of the last steps).', (s) => s.recallBytesPerStep);
  total('arkvale:prompt_tokens_total', 'Prompt tokens of admitted requests.', (s) => s.promptTokens);
  total('arkvale:generation_tokens_total', 'Tokens generated.', (s) => s.generationTokens);
  total('arkvale:kv_recalls_total', 'Pages recalled from the host.', (s) => s.recalls);
  total('arkvale:kv_recall_bytes_total', 'Bytes recalled from the host.', (s) => s.recallBytes);
  total('arkvale:num_preemptions_total', 'Sequences parked in the host pool because the device pool ran short.', (s) => s.parks);
  total('arkvale:engine_steps_total', 'Engine steps (one forward pass each).', (s) => s.steps);
  total('arkvale:decode_steps_total', 'Engine steps of decode rows alone (no prompt chunk).', (s) => s.decodeSteps);
  total('arkvale:decode_step_seconds_total', 'Time of those steps (scheduling, forward pass, sampling).', (s) => s.decodeStepMs / 1000);
  total('arkvale:decode_step_rows_total', 'Tokens those steps decoded (one per sequence per step).', (s) => s.decodeStepRows);
  total('arkvale:graph_replayed_steps_total', 'Decode-only steps replayed as a CUDA graph.', (s) => s.graphReplayedSteps);
  total('arkvale:graph_direct_steps_total', 'Of those, steps replayed without running the forward pass on the host.', (s) => s.graphDirectSteps);
  total(
    'arkvale:overlapped_steps_total',
    "Decode steps issued before the host read the tokens they feed (the last step's, kept on the device).",
    (s) => s.overlappedSteps,
  );
  gauge('arkvale:graph_replayed_step_share', 'Share of decode-only steps replayed as a CUDA graph.', (s) =>
    s.decodeSteps ? s.graphReplayedSteps / s.decodeSteps : 0,
  );

  total('arkvale:prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache.', (s) => s.prefixCache.queryTokens);
  total('arkvale:prefix_cache_hits_total', 'Prompt tokens found in the prefix cache (not prefilled).', (s) => s.prefixCache.hitTokens);
  gauge(
    'arkvale:prefix_cache_device_pages',
    'Device KV pages the prefix cache holds (shared with running requests or given back on demand).',
    (s) => s.prefixCache.deviceSlots,
  );
  gauge('arkvale:prefix_cache_host_pages', 'Host KV pages the prefix cache holds.', (s) => s.prefixCache.hostSlots);

  const ttft = new Histogram({
    name: 'arkvale:time_to_first_token_seconds',
    help: 'Time from submission to the first token.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const itl = new Histogram({
    name: 'arkvale:inter_token_latency_seconds',
    help: 'Time between consecutive tokens of a request.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const e2e = new Histogram({
    name: 'arkvale:e2e_request_latency_seconds',
    help: 'Time from submission to the end of a request.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const finished = new Counter({
    name: 'arkvale:request_success_total',
    help: 'Requests ended, by finish reason.',
    labelNames: ['finished_reason'],
    registers: [registry],
  });

  // The engine may arrive later (serve loads it while already listening).
  let observed: AsyncEngine | null = null;
  let detach: (() => void) | null = null;
  const attach = () => {
    const engine = getEngine();
    if (!engine || engine === observed) return;
    detach?.();
    observed = engine;
    detach = engine.observe({
      onFirstToken: (s) => ttft.observe(s),
      onToken: (s) => itl.observe(s),
      onDone: ({ seconds, finishReason }) => {
        e2e.observe(seconds);
        finished.inc({ finished_reason: finishReason });
      },
    });
  };
  attach();
  app.addHook('onRequest', async () => attach());
  app.addHook('onClose', async () => detach?.());
  app.get(opts.path ?? '/metrics', async (_req, reply) => {
    attach();
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
};
