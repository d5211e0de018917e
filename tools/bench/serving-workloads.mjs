// The serving benchmark at model scale (`pnpm bench --serving --shape NAME`), modelled on
// vLLM's benchmark_serving: `arkvale serve`'s parts (a worker engine behind the OpenAI
// routes) on loopback, requests sent by the official `openai` client, streamed, at
// Poisson arrival rates or all at once. Per workload and plan: request and output-token
// throughput, the decode phase's token rate, TTFT, TPOT and ITL at p50/p90/p99, pages on
// the device and the host, recalls, the share of decode steps replayed as graphs, and
// prefix hits (usage.prompt_tokens_details.cached_tokens).
//
// Workloads (token counts times --scale, for a quick run on a small machine):
//   long        prompts uniform in 16k-30k tokens, 256 output tokens each;
//   shared-doc  one 30k-token document followed by 64 questions of ~32 tokens, sent one
//               after another, then 16 at a time;
//   multi-turn  16 conversations of 8 turns, each turn adding 512 tokens and generating 256.
// A model shape has no tokenizer: prompts are random token ids, and a conversation's next
// turn carries the answer's token ids (return_token_ids), so that it starts with the last
// turn's tokens exactly, as a chat client's next prompt does.
import OpenAI from 'openai';
import { pageBytes, seededUniform } from '@arkvale/core';
import { WorkerEngine } from '@arkvale/engine';
import { kvGeometry, shapeConfig } from '@arkvale/model-llama';
import { createArkvaleServer } from '@arkvale/server';
import { WORKLOADS } from './model-options.mjs';

const pct = (xs, p) => (xs.length ? +[...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))].toFixed(2) : null);
const percentiles = (xs) => ({ p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One streamed completion: its timings (ms), output tokens and their ids, and cached prompt tokens. */
async function complete(client, model, prompt, maxTokens, extra = {}) {
  const t0 = performance.now();
  let first = null;
  let last = t0;
  const itl = [];
  let usage = null;
  const stream = await client.completions.create({
    model,
    prompt,
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
    return_token_ids: true,
    ...extra,
  });
  const ids = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices?.length) continue;
    ids.push(...(chunk.choices[0].token_ids ?? []));
    const now = performance.now();
    if (first === null) first = now - t0;
    else itl.push(now - last);
    last = now;
  }
  const output = usage?.completion_tokens ?? 0;
  return {
    ttft: first ?? last - t0,
    latency: last - t0,
    tpot: output > 1 ? (last - t0 - (first ?? 0)) / (output - 1) : null,
    itl,
    output,
    ids,
    cached: usage?.prompt_tokens_details?.cached_tokens ?? 0,
  };
}

/** Sends `jobs` (functions returning a request's promise) at a Poisson rate per second, or all at once (rate Infinity). */
async function poisson(jobs, rate, uniform) {
  const running = [];
  for (const job of jobs) {
    running.push(job());
    if (Number.isFinite(rate)) await sleep((-Math.log(1 - uniform()) / rate) * 1000);
  }
  return Promise.all(running);
}

/** The requests of a workload, as phases of jobs: each phase's jobs run at the rate, phases one after another. */
function workloadPhases(name, { vocab, scale, uniform, rate, requests }) {
  const n = (tokens) => Math.max(1, Math.round(tokens * scale));
  const ids = (count) => Array.from({ length: count }, () => 1 + Math.floor(uniform() * (vocab - 1)));
  if (name === 'long') {
    const prompts = Array.from({ length: requests }, () => ids(n(16_384 + uniform() * (30_720 - 16_384))));
    return [
      {
        key: `long, ${Number.isFinite(rate) ? `${rate}/s` : 'at once'}`,
        label: `${requests} prompts of 16k-30k tokens, ${Number.isFinite(rate) ? `${rate}/s` : 'all at once'}`,
        rate,
        jobs: prompts.map((p) => (c) => c(p, n(256))),
      },
    ];
  }
  if (name === 'shared-doc') {
    const doc = ids(n(30_720));
    const question = () => [...doc, ...ids(32)];
    const one = Array.from({ length: 64 }, question);
    const many = Array.from({ length: 64 }, question);
    const checked = one.slice(0, 8);
    return [
      {
        key: 'shared doc, one by one',
        label: '64 questions on one document, one after another',
        rate: Infinity,
        serial: true,
        jobs: one.map((p) => (c) => c(p, n(64))),
      },
      {
        key: 'shared doc, uncached',
        label: 'the first 8 questions again with cache_prefix: false (their greedy answers against the cached ones)',
        rate: Infinity,
        serial: true,
        uncachedOf: 'shared doc, one by one',
        jobs: checked.map((p) => (c) => c(p, n(64), { cache_prefix: false })),
      },
      {
        key: 'shared doc, 16 at a time',
        label: '64 questions on one document, 16 at a time',
        rate: Infinity,
        concurrency: 16,
        jobs: many.map((p) => (c) => c(p, n(64))),
      },
    ];
  }
  if (name === 'multi-turn') {
    // Each conversation runs its turns in order; the conversations run side by side.
    const conversations = Array.from({ length: 16 }, () => ({ history: [] }));
    return [
      {
        key: 'multi-turn',
        label: '16 conversations of 8 turns',
        rate: Infinity,
        conversations: conversations.map((conv) => async (c) => {
          const turns = [];
          let asked = 0;
          for (let t = 0; t < 8; t++) {
            conv.history = [...conv.history, ...ids(n(512))];
            const r = await c(conv.history, n(256));
            // New to this turn: the last answer and the new text.
            turns.push({ turn: t + 1, ...r, promptTokens: conv.history.length, addedTokens: conv.history.length - asked });
            asked = conv.history.length;
            conv.history = [...conv.history, ...r.ids];
          }
          return turns;
        }),
      },
    ];
  }
  throw new Error(`unknown workload ${name} (${WORKLOADS.join(', ')})`);
}

/** Runs one phase: its requests as the phase says (serially, in a window of `concurrency`, at a rate, or as conversations). */
async function runPhase(phase, call, uniform) {
  if (phase.conversations) return (await Promise.all(phase.conversations.map((conv) => conv(call)))).flat();
  if (phase.serial) {
    const out = [];
    for (const job of phase.jobs) out.push(await job(call));
    return out;
  }
  if (phase.concurrency) {
    const out = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: phase.concurrency }, async () => {
        for (let i = next++; i < phase.jobs.length; i = next++) out[i] = await phase.jobs[i](call);
      }),
    );
    return out;
  }
  return poisson(
    phase.jobs.map((job) => () => job(call)),
    phase.rate,
    uniform,
  );
}

function summarize(results, seconds, before, after) {
  const output = results.reduce((s, r) => s + r.output, 0);
  const decodeMs = after.decodeStepMs - before.decodeStepMs;
  return {
    requests: results.length,
    seconds: +seconds.toFixed(2),
    requestsPerSecond: +(results.length / seconds).toFixed(3),
    outputTokensPerSecond: +(output / seconds).toFixed(1),
    // Tokens of decode-only steps over those steps' time: the rate once prompts are in.
    decodeTokensPerSecond: decodeMs > 0 ? +(((after.decodeStepRows - before.decodeStepRows) * 1000) / decodeMs).toFixed(1) : null,
    ttftMs: percentiles(results.map((r) => r.ttft)),
    tpotMs: percentiles(results.flatMap((r) => (r.tpot === null ? [] : [r.tpot]))),
    itlMs: percentiles(results.flatMap((r) => r.itl)),
    prefixHitTokens: results.reduce((s, r) => s + r.cached, 0),
    prefillTokens: after.prefillTokens - before.prefillTokens,
    recalls: after.recalls - before.recalls,
    decodeSteps: after.decodeSteps - before.decodeSteps,
    graphReplayedShare:
      after.decodeSteps > before.decodeSteps
        ? +((after.graphReplayedSteps - before.graphReplayedSteps) / (after.decodeSteps - before.decodeSteps)).toFixed(3)
        : null,
    devicePages: { capacity: after.devicePages.capacity, used: after.devicePages.used },
    hostPages: { capacity: after.hostPages.capacity, used: after.hostPages.used },
  };
}

/**
 * Per plan a fresh server (engine, routes) with device KV capped at `kvGB`, then every
 * workload through it. Returns the JSON report.
 */
export async function servingWorkloads({ shape, backend, dtype, tensorParallel = 1, plans, workloads, kvGB, scale, rates, requests, pageSize = 32, log }) {
  const config = shapeConfig(shape);
  const bytesPerPage = pageBytes(kvGeometry(config, pageSize, backend === 'cpu' || backend === 'reference' ? 4 : 2));
  const devicePages = Math.floor((kvGB * 1e9) / bytesPerPage);
  const report = { shape, backend, tensorParallel, kvGB, devicePages, scale, pageSize, runs: [] };
  for (const plan of plans) {
    const label = `${plan.policy}${plan.budgetTokens ? ` @ ${plan.budgetTokens}` : ''}`;
    log(`${label}: starting the server (${devicePages} device pages = ${kvGB} GB of KV)`);
    let engine;
    try {
      engine = await WorkerEngine.start({
        shape,
        backend,
        dtype,
        tensorParallel,
        pageSize,
        devicePages,
        policy: plan.policy,
        budgetTokens: plan.budgetTokens ?? 512,
        onLog: (t) => process.stderr.write(t),
      });
    } catch (e) {
      report.runs.push({ plan: label, error: e.message });
      log(`${label}: ${e.message}`);
      continue;
    }
    const server = createArkvaleServer({ engine });
    const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 3_600_000 });
    const call = (prompt, maxTokens, extra) => complete(client, engine.model.id, prompt, maxTokens, extra);
    try {
      for (const workload of workloads) {
        for (const rate of workload === 'long' ? rates : [Infinity]) {
          const uniform = seededUniform(7);
          for (const phase of workloadPhases(workload, { vocab: config.vocabSize, scale, uniform, rate, requests })) {
            log(`${label}, ${workload}: ${phase.label}`);
            const before = await engine.stats();
            const t0 = performance.now();
            const results = await runPhase(phase, call, uniform);
            const row = {
              plan: label,
              workload,
              key: phase.key,
              phase: phase.label,
              ...summarize(results, (performance.now() - t0) / 1000, before, await engine.stats()),
            };
            if (phase.uncachedOf) {
              const cached = report.runs.find((r) => r.plan === label && r.key === phase.uncachedOf)?.answers ?? [];
              row.identicalToCached = results.every((r, i) => JSON.stringify(r.ids) === JSON.stringify(cached[i]));
              row.compared = results.length;
            }
            if (workload === 'shared-doc' && phase.serial && !phase.uncachedOf) {
              row.answers = results.slice(0, 8).map((r) => r.ids);
              const s = await engine.stats();
              // Where the document's pages are: the prefix cache's slots, against the document's pages in every layer.
              row.prefixCache = {
                ...s.prefixCache,
                documentPagesPerLayer: Math.floor(Math.max(1, Math.round(30_720 * scale)) / pageSize),
                layers: config.numLayers,
              };
              // The questions after the first against the first (the document's prefill).
              row.firstTtftMs = +results[0].ttft.toFixed(2);
              row.laterTtftMsP50 = pct(
                results.slice(1).map((r) => r.ttft),
                50,
              );
            }
            if (workload === 'multi-turn') {
              const byTurn = (f) => Array.from({ length: 8 }, (_, t) => f(results.filter((r) => r.turn === t + 1)));
              row.ttftMsByTurn = byTurn((rs) =>
                pct(
                  rs.map((r) => r.ttft),
                  50,
                ),
              );
              // Prompt tokens each turn prefilled (not found in the prefix cache), summed over the conversations, against the tokens it added.
              row.prefilledByTurn = byTurn((rs) => rs.reduce((s, r) => s + r.promptTokens - r.cached, 0));
              row.addedByTurn = byTurn((rs) => rs.reduce((s, r) => s + r.addedTokens, 0));
            }
            report.runs.push(row);
            log(`  ${row.outputTokensPerSecond} output tok/s, TTFT p50 ${row.ttftMs.p50} ms, TPOT p50 ${row.tpotMs.p50} ms, ${row.recalls} recalls`);
            // What the acceptance reads, also in the log (a run stopped at its time limit writes no JSON).
            if (row.firstTtftMs !== undefined)
              log(`  first TTFT ${row.firstTtftMs} ms, later questions' TTFT p50 ${row.laterTtftMsP50} ms; prefix cache ${JSON.stringify(row.prefixCache)}`);
            if (row.identicalToCached !== undefined) log(`  answers identical to the cached ones: ${row.identicalToCached} (${row.compared} compared)`);
            if (row.ttftMsByTurn)
              log(
                `  TTFT p50 by turn ${JSON.stringify(row.ttftMsByTurn)} ms; prefilled by turn ${JSON.stringify(row.prefilledByTurn)} of added ${JSON.stringify(row.addedByTurn)}`,
              );
          }
        }
      }
    } finally {
      const stats = await server.shutdown(0);
      report.runs.push({ plan: label, poolsEmptyAtEnd: stats ? stats.devicePages.used === 0 && stats.hostPages.used === 0 : null });
    }
  }
  return report;
}
