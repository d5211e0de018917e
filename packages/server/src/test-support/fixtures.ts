import { fileURLToPath } from 'node:url';
import { WorkerEngine, type EngineStats, type WorkerEngineOptions } from '@arkvale/engine';
import { expect } from 'vitest';
import { createArkvaleServer, type ArkvaleServer } from '../server.js';

export const MODEL_DIR = fileURLToPath(new URL('../../../../models/tiny-retrieval', import.meta.url));

export interface TestServer {
  readonly server: ArkvaleServer;
  readonly engine: WorkerEngine;
  readonly url: string;
  stop(): Promise<void>;
}

/** A server on 127.0.0.1 (a free port) around a worker engine on the bundled model. */
export async function startServer(options: Partial<WorkerEngineOptions> & { apiKey?: string; bodyLimit?: number } = {}): Promise<TestServer> {
  const engine = await WorkerEngine.start({ modelDir: MODEL_DIR, devicePages: 2048, hostPages: 8192, budgetTokens: 64, chunkTokens: 64, ...options });
  const server = createArkvaleServer({ engine, apiKey: options.apiKey, bodyLimit: options.bodyLimit });
  await server.ready;
  const address = await server.app.listen({ host: '127.0.0.1', port: 0 });
  return { server, engine, url: address, stop: async () => void (await server.shutdown(0)) };
}

/** Every page still in use is one that only the prefix cache holds (given back whenever a request needs it): nothing leaked. */
export function expectNoPageLeak(stats: EngineStats): void {
  for (const pool of [stats.devicePages, stats.hostPages, stats.digestPages]) expect(pool.used).toBe(pool.cached);
}

/** Prometheus text -> value of one unlabelled metric. */
export function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.slice(name.length + 1));
}

/** Reads a whole SSE response: the data payloads in order. */
export async function readSse(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6));
}
