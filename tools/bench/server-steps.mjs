// The server's decode steps at fixed points, and batch invariance through the server
// (`pnpm bench --server-steps --shape NAME`): `arkvale serve`'s parts (a worker engine
// behind the OpenAI routes) on loopback, requests sent by the official `openai` client.
//
// Steps: per point (batch x context), `batch` prompts of `context` random token ids sent
// at once; the decode-only steps that ran while every one of them was decoding, from the
// engine's counters: their mean time and rows, and the share replayed as CUDA graphs.
// Compare with decode-bench.mjs at the same point (its step through BatchRun, no server).
//
// Invariance: one prompt alone, then inside batches of other prompts sent at once: its
// greedy tokens must be the same in every batch. Random weights make greedy decoding
// repeat one token, which hides small differences in the logits, so the same prompt is
// also sampled (temperature 1, a fixed seed): a draw near a boundary of the distribution
// changes with the last bits of the logits.
import OpenAI from 'openai';
import { seededUniform } from '@arkvale/core';
import { WorkerEngine } from '@arkvale/engine';
import { shapeConfig } from '@arkvale/model-llama';
import { createArkvaleServer } from '@arkvale/server';

/** Streams one completion; calls `onToken(count)` as tokens arrive; resolves with its token ids. */
async function stream(client, model, prompt, maxTokens, onToken = () => {}, sampling = { temperature: 0 }, budget = undefined) {
  const s = await client.completions.create({
    model,
    prompt,
    max_tokens: maxTokens,
    ...sampling,
    ignore_eos: true,
    stream: true,
    cache_prefix: false,
    return_token_ids: true,
    ...(budget ? { kv_budget: budget } : {}),
  });
  const ids = [];
  for await (const chunk of s) {
    const got = chunk.choices?.[0]?.token_ids ?? [];
    if (got.length) {
      ids.push(...got);
      onToken(ids.length);
    }
  }
  return ids;
}

/** The decode-only steps between two engine snapshots. */
function stepsBetween(a, b) {
  const steps = b.decodeSteps - a.decodeSteps;
  return {
    steps,
    stepMs: steps ? +((b.decodeStepMs - a.decodeStepMs) / steps).toFixed(3) : null,
    rowsPerStep: steps ? +((b.decodeStepRows - a.decodeStepRows) / steps).toFixed(2) : null,
    graphReplayedShare: steps ? +((b.graphReplayedSteps - a.graphReplayedSteps) / steps).toFixed(3) : null,
  };
}

/** `batch` prompts at once; the steps while all of them decode (from each one's 2nd token to the first one's last 8). */
async function measurePoint(engine, client, { batch, context, maxTokens, budgetTokens }, ids) {
  const prompts = Array.from({ length: batch }, () => ids(context));
  const counts = new Array(batch).fill(0);
  let start = null;
  let end = null;
  const t0 = performance.now();
  const snapshot = () => engine.stats();
  const check = (i, n) => {
    counts[i] = n;
    if (start === null && counts.every((c) => c >= 2)) start = snapshot();
    if (start !== null && end === null && n >= maxTokens - 8) end = snapshot();
  };
  await Promise.all(prompts.map((p, i) => stream(client, engine.model.id, p, maxTokens, (n) => check(i, n), undefined, budgetTokens)));
  const seconds = (performance.now() - t0) / 1000;
  const at = { batch, context, budgetTokens: budgetTokens ?? null };
  if (!start || !end) return { ...at, error: 'the requests never decoded side by side' };
  return { ...at, seconds: +seconds.toFixed(1), ...stepsBetween(await start, await end) };
}

export async function serverSteps({
  shape,
  backend,
  dtype,
  tensorParallel = 1,
  policy,
  budgetTokens,
  pageSize = 32,
  points,
  invariance,
  invarianceContext,
  log,
}) {
  const config = shapeConfig(shape);
  const uniform = seededUniform(11);
  const ids = (n) => Array.from({ length: n }, () => 1 + Math.floor(uniform() * (config.vocabSize - 1)));
  const report = { shape, backend, tensorParallel, policy, budgetTokens, pageSize, points: [], invariance: null };
  const engine = await WorkerEngine.start({ shape, backend, dtype, tensorParallel, pageSize, policy, budgetTokens, onLog: (t) => process.stderr.write(t) });
  const server = createArkvaleServer({ engine });
  const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 3_600_000 });
  try {
    const ready = await engine.stats();
    report.devicePages = ready.devicePages.capacity;
    report.hostPages = ready.hostPages.capacity;
    for (const point of points) {
      log(`server steps: batch ${point.batch} at ${point.context} tokens`);
      const row = await measurePoint(engine, client, point, ids);
      report.points.push(row);
      log(`  ${row.stepMs} ms a step over ${row.steps} steps of ${row.rowsPerStep} rows, ${row.graphReplayedShare} replayed`);
    }
    if (invariance.length) {
      const probe = ids(invarianceContext);
      const maxTokens = 32;
      log(`batch invariance: one ${invarianceContext}-token prompt alone, then in batches of ${invariance.join(', ')}`);
      const sampled = { temperature: 1, seed: 1234 };
      const alone = await stream(client, engine.model.id, probe, maxTokens);
      const aloneSampled = await stream(client, engine.model.id, probe, maxTokens, undefined, sampled);
      const same = (a, b) => ({ identical: JSON.stringify(a) === JSON.stringify(b), firstDifference: a.findIndex((t, i) => t !== b[i]) });
      const batches = [];
      for (const size of invariance) {
        // The probe twice (greedy, then sampled) among size - 2 others, in the middle of the batch.
        const others = Array.from({ length: size - 2 }, () => ids(invarianceContext));
        const half = Math.floor(others.length / 2);
        const jobs = [
          ...others.slice(0, half).map((p) => () => stream(client, engine.model.id, p, maxTokens)),
          () => stream(client, engine.model.id, probe, maxTokens),
          () => stream(client, engine.model.id, probe, maxTokens, undefined, sampled),
          ...others.slice(half).map((p) => () => stream(client, engine.model.id, p, maxTokens)),
        ];
        const out = await Promise.all(jobs.map((j) => j()));
        batches.push({ size, greedy: same(out[half], alone), sampled: same(out[half + 1], aloneSampled) });
      }
      report.invariance = { context: invarianceContext, maxTokens, alone, aloneSampled, batches };
      log(`  identical (greedy, sampled): ${batches.map((b) => `${b.size}: ${b.greedy.identical}, ${b.sampled.identical}`).join('; ')}`);
    }
  } finally {
    const stats = await server.shutdown(0);
    report.poolsEmptyAtEnd = stats ? stats.devicePages.used === 0 && stats.hostPages.used === 0 : null;
  }
  return report;
}
