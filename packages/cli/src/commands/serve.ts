import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import type { CacheFlags } from '../options.js';
import { ArkvaleError, invalidArgument } from '@arkvale/core';
import { LLAMA_SHAPES, shapeConfig } from '@arkvale/model-llama';
import { cachePlan, checkBackendChoice, parseIntOption, parseSwitchOption, resolveModelDir } from '../options.js';
import { addCacheOptions, addModelOptions, type ModelFlags } from './shared.js';

interface ServeFlags extends CacheFlags, ModelFlags {
  host: string;
  port: number;
  apiKey?: string;
  modelName?: string;
  devicePages?: number;
  hostPages?: number;
  chunkTokens: number;
  /** false with --no-prefix-cache. */
  prefixCache: boolean;
  /** --overlap-steps; unset: the backend's choice (on for CUDA). */
  overlapSteps?: boolean;
  maxRunning: number;
  maxWaiting: number;
  chatTemplate?: string;
  shutdownGrace: number;
  shape?: string;
}

/**
 * `arkvale serve`: the OpenAI-compatible server (@arkvale/server) around a worker
 * engine (@arkvale/engine). Listens at once (/health answers 503 while the model loads), and shuts down
 * gracefully on SIGINT/SIGTERM: stops accepting, lets running requests finish for the
 * grace period, aborts the rest and frees every page.
 */
export function serveCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('serve')
    .description('serve the model over an OpenAI-compatible HTTP API with continuous batching (Ctrl-C stops)')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', parseIntOption('port'), 8000)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1')
    .option('--model-name <name>', 'the model name clients send (default: the folder name)')
    .option('-p, --policy <name>', 'default KV policy: full | streaming-llm | h2o | tova | quest | arkvale', 'arkvale')
    .option('--budget <tokens>', 'default KV budget per sequence and layer', parseIntOption('budget', 1), 512)
    .option(
      '--device-pages <n>',
      'device KV pool in pages, shared by all requests (default: on a GPU every page --gpu-memory-utilization leaves beside the weights; 4096 on the CPU)',
      parseIntOption('device pages', 1),
    )
    .option(
      '--host-pages <n>',
      "host KV pool in pages (default: on a GPU half this machine's memory; 4x the device pool on the CPU)",
      parseIntOption('host pages'),
    )
    .option('--chunk-tokens <n>', 'prompt tokens per prefill chunk', parseIntOption('chunk tokens', 1), 256)
    .option('--max-running <n>', 'sequences admitted at most', parseIntOption('max running', 1), 256)
    .option('--max-waiting <n>', 'requests queued at most (then 429)', parseIntOption('max waiting'), 1024)
    .option(
      '--no-prefix-cache',
      'prefill every prompt whole: keep no pages of finished requests for prompts that start with the same tokens (a request opts out alone with "cache_prefix": false)',
    )
    .option(
      '--overlap-steps <on|off>',
      "on: issue each decode step before reading the last one's tokens, which stay on the device for it; off: read them first (default: on for CUDA, off on the CPU)",
      parseSwitchOption('overlap steps'),
    )
    .option(
      '--shape <name>',
      `random weights at a model shape instead of --model (${Object.keys(LLAMA_SHAPES).join(', ')}): model-scale serving without a checkpoint; prompts as token ids`,
    )
    .option('--chat-template <file>', "Jinja chat template (default: the model's, else plain: message contents joined by newlines)")
    .option('--shutdown-grace <seconds>', 'how long running requests may finish on SIGINT/SIGTERM', parseIntOption('shutdown grace'), 5);
  addCacheOptions(addModelOptions(cmd)).action(async (flags: ServeFlags) => {
    // Choices the worker would refuse are refused before anything listens.
    checkBackendChoice(flags.backend, flags.dtype);
    const [{ WorkerEngine }, { createArkvaleServer }] = await Promise.all([import('@arkvale/engine'), import('@arkvale/server')]);
    if (flags.shape !== undefined && flags.model !== undefined) throw invalidArgument('give --model or --shape, not both');
    if (flags.shape !== undefined) shapeConfig(flags.shape); // an unknown shape is refused before anything listens
    const source = flags.shape !== undefined ? { shape: flags.shape } : { modelDir: resolveModelDir(flags.model) };
    const loading = source.shape !== undefined ? `random weights at the ${source.shape} shape` : source.modelDir;
    const engine = WorkerEngine.start({
      ...source,
      modelId: flags.modelName,
      // The worker loads its backend with the engine's loadBackend: the same choices as generate and eval.
      backend: flags.backend,
      dtype: flags.dtype,
      gpuMemoryUtilization: flags.gpuMemoryUtilization,
      tensorParallel: flags.tensorParallel,
      onLog: io.err,
      chatTemplateFile: flags.chatTemplate,
      // The cache flags as generate and eval read them (policy and digest checked).
      ...cachePlan(flags),
      devicePages: flags.devicePages,
      hostPages: flags.hostPages,
      chunkTokens: flags.chunkTokens,
      maxRunning: flags.maxRunning,
      maxWaiting: flags.maxWaiting,
      prefixCache: flags.prefixCache,
      overlapSteps: flags.overlapSteps,
    });
    const server = createArkvaleServer({ engine, apiKey: flags.apiKey });
    const address = await server.app.listen({ host: flags.host, port: flags.port });
    io.err(`arkvale serve: listening on ${address} (/v1, /health, /metrics); loading ${loading}\n`);
    let ready: Awaited<typeof server.ready>;
    try {
      ready = await server.ready;
    } catch (e) {
      // The engine could not start (bad backend, no memory, a broken model): stop listening too.
      await server.app.close();
      throw e instanceof ArkvaleError ? e : new ArkvaleError('INVALID_ARGUMENT', (e as Error).message);
    }
    io.err(
      `arkvale serve: ready: model "${ready.model.id}", ${ready.model.backend} backend, default ${ready.model.defaultPolicy} @ ${ready.model.defaultBudget} tokens, ` +
        `pages of ${ready.model.pageSize}${ready.model.kvDtype === 'fp8' ? ' (fp8)' : ''}; chat prompts: ${ready.chatFormat}\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        io.err(`arkvale serve: ${signal}: stopping (running requests get ${flags.shutdownGrace} s)\n`);
        void server.shutdown(flags.shutdownGrace * 1000).then((stats) => {
          io.err(
            `arkvale serve: stopped; ${stats?.finished ?? 0} requests finished, ${stats?.aborted ?? 0} aborted; KV pages in use: ${stats?.devicePages.used ?? 0} device, ${stats?.hostPages.used ?? 0} host\n`,
          );
          resolve();
        });
      };
      const onInt = () => stop('SIGINT');
      const onTerm = () => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
  });
}
