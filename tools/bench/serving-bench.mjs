// The serving benchmark (`pnpm bench --serving`): requests per second, time to first
// token and inter-token latency percentiles at 1, 8 and 64 concurrent clients, through
// the engine API of @arkvale/engine (a worker engine, continuous batching), greedy,
// short prompts of mixed lengths, ArkVale @ 512.
import { cpus } from 'node:os';
import { WorkerEngine } from '@arkvale/engine';

const PROMPTS = [
  'The old farmer painted',
  'Once upon a time in a small village there lived a',
  'The pass key is 74820. Remember it. The pass key is',
  'My yellow mountain',
];
const pct = (xs, p) => (xs.length ? +[...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))].toFixed(2) : null);

export async function servingBench({ modelDir, quick, log }) {
  const engine = await WorkerEngine.start({ modelDir, devicePages: 4096, budgetTokens: 512 });
  const maxTokens = quick ? 8 : 16;
  const run = async (i) => {
    const t0 = performance.now();
    let last = t0;
    let ttft = null;
    const itl = [];
    for await (const ev of engine.submit({ prompt: PROMPTS[i % PROMPTS.length], maxTokens, ignoreEos: true })) {
      if (ev.type !== 'token') continue;
      const now = performance.now();
      if (ttft === null) ttft = now - t0;
      else itl.push(now - last);
      last = now;
    }
    return { ttft, itl };
  };
  await Promise.all([0, 1, 2, 3].map(run)); // warm-up
  const levels = [];
  for (const clients of [1, 8, 64]) {
    const total = quick ? clients * 2 : clients * 4;
    log(`serving: ${clients} concurrent client(s), ${total} requests`);
    let next = 0;
    const results = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = next++; i < total; i = next++) results.push(await run(i));
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const ttfts = results.map((r) => r.ttft);
    const itls = results.flatMap((r) => r.itl);
    levels.push({
      clients,
      requests: total,
      maxTokens,
      requestsPerSecond: +(total / seconds).toFixed(2),
      tokensPerSecond: +((total * maxTokens) / seconds).toFixed(1),
      ttftMs: { p50: pct(ttfts, 50), p90: pct(ttfts, 90), p99: pct(ttfts, 99) },
      interTokenMs: { p50: pct(itls, 50), p90: pct(itls, 90), p99: pct(itls, 99) },
    });
  }
  const stats = await engine.close();
  return {
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    model: 'tiny-retrieval',
    policy: 'arkvale@512',
    levels,
    poolsEmpty: stats.devicePages.used === 0 && stats.hostPages.used === 0,
  };
}
