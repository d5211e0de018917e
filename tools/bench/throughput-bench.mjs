#!/usr/bin/env node
// Decode throughput in the paper's setting: device KV limited to --kv-gb (default 40 GB),
// every sequence --context tokens long (default 30720), the largest batch each plan fits,
// the host pool as large as --host-gb allows (default 80% of this machine's memory).
//
//   node tools/bench/throughput-bench.mjs [--shape llama2-7b] [--backend cuda] [--dtype f16]
//     [--context 30720] [--kv-gb 40] [--host-gb N] [--plans full,arkvale@512] [--page-size 32] [--kv-dtype auto]
//     [--steps 8] [--warmup 0] [--max-batch 64] [--out FILE]
//
// Per plan: the batch is the most sequences whose resident KV (every page of the
// unbudgeted layers, the budget of the others) fits the KV limit beside one layer's
// full prompt (a prefill's transient) and the scheduler's one-step margin, and whose host
// backups fit the host pool. The engine's offline run prefills the prompts one per step
// (activations of one prompt at a time; the sequences already prefilled decode in the same
// steps, as under continuous batching), then the whole batch decodes `warmup` untimed and
// `steps` timed greedy steps; tokens per second
// = batch x steps / time (with the median step, the mean and longest step of each kind:
// replayed, recorded, eager; and the GC pauses among the timed steps).
// Random weights with a shared embedding component, as decode-bench.mjs. JSON out, with
// each plan's tokens per second over Full's.
import { totalmem } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { pageBytes, poolPagesFor, resolveCacheOptions, seededUniform } from '@arkvale/core';
import { kvGeometry, shapeConfig } from '@arkvale/model-llama';
import { benchCache, benchForward, benchWeights, endBenchForward } from './bench-model.mjs';
import { BatchRun, describeBackend, loadBackend, stepPagesBound } from '@arkvale/engine';
import { int, list, number, parseCommand } from '../lib/args.mjs';
import { backendOption, dtypeOption, kvDtypeOption, planSpec, shapeOption, tensorParallelOption } from './model-options.mjs';

// When a flag is given twice the last one wins, so a wrapper's defaults can be overridden by later arguments.
const { values: opts } = parseCommand({
  usage: 'node tools/bench/throughput-bench.mjs [options]',
  about: `Decode throughput under a device KV limit: per plan, the largest batch of --context-token
sequences that fits --kv-gb (and whose host backups fit --host-gb), prefilled one at a
time, then --steps timed greedy steps of the whole batch. JSON on stdout (and --out FILE).`,
  options: {
    shape: shapeOption,
    backend: backendOption,
    dtype: dtypeOption,
    context: { type: 'string', value: 'N', default: '30720', parse: int({ min: 1 }), help: 'tokens per sequence' },
    'kv-gb': { type: 'string', value: 'GB', default: '40', parse: number({ above: 0 }), help: 'the device KV limit in GB' },
    // Pinned backups of every budgeted page are what stop ArkVale's batch (15.1 GB per
    // 30k-token sequence at the 7B shape): 80% of the GPU machine's 125 GiB is 107 GB, seven
    // sequences' pool, and 108 GB pinned there left the process and the system room.
    'host-gb': {
      type: 'string',
      value: 'GB',
      default: String((totalmem() * 0.8) / 1e9),
      shownDefault: `80% of this machine's memory, ${((totalmem() * 0.8) / 1e9).toFixed(1)}`,
      parse: number({ above: 0 }),
      help: 'the host page pool in GB',
    },
    plans: { type: 'string', value: 'LIST', default: 'full,arkvale@512', parse: list(planSpec), help: 'policy[@budget], comma-separated' },
    'page-size': { type: 'string', value: 'N', default: '32', parse: int({ min: 1 }), help: 'tokens per KV page' },
    'kv-dtype': kvDtypeOption,
    'tensor-parallel': tensorParallelOption,
    steps: { type: 'string', value: 'N', default: '8', parse: int({ min: 1 }), help: 'timed decode steps' },
    warmup: { type: 'string', value: 'N', default: '0', parse: int({ min: 0 }), help: 'untimed decode steps before them' },
    'max-batch': { type: 'string', value: 'N', default: '64', parse: int({ min: 1 }), help: 'the largest batch tried' },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON to FILE' },
  },
});

const shape = opts.shape;
const context = opts.context;
const kvBytes = opts['kv-gb'] * 1e9;
const hostBytes = opts['host-gb'] * 1e9;
const pageSize = opts['page-size'];
const steps = opts.steps;
const warmup = opts.warmup;
const maxBatch = opts['max-batch'];
const plans = opts.plans;
const log = (t) => process.stderr.write(`${t}\n`);

const backend = await loadBackend({ backend: opts.backend, dtype: opts.dtype, onWarning: (t) => process.stderr.write(t) });
const config = shapeConfig(shape);
const weights = await benchWeights(config, backend, opts['tensor-parallel'], 1, shape);
const kvDtype = opts['kv-dtype'];
const geometry = kvGeometry(config, pageSize, backend.dtype === 'f32' ? 4 : 2, kvDtype);
const bytesPerPage = pageBytes(geometry);
// Room for every step: a sequence prefilled first decodes while the others are prefilled (up to max-batch steps).
const tokens = context + maxBatch + warmup + steps + 1;
const promptPages = Math.ceil(tokens / pageSize);

/** The largest batch of this plan under the limits, and which limit stops it. */
function fit(plan) {
  const resolved = resolveCacheOptions(geometry, { ...plan, pageSize, devicePages: 1 });
  const one = poolPagesFor(geometry, resolved, tokens, 1);
  const budgeted = resolved.policy !== 'full';
  // poolPagesFor counts a budgeted prefill's transient layer per sequence; one prefill runs at a time here.
  const resident = one.devicePages - (budgeted ? promptPages : 0);
  const transient = budgeted ? promptPages : 0;
  // The scheduler admits a prompt only with a decode step's worth of pages free beside it.
  const margin = stepPagesBound(geometry, resolved);
  const byKv = Math.floor((kvBytes / bytesPerPage - transient - margin) / resident);
  const byHost = one.hostPages > 0 ? Math.floor(hostBytes / bytesPerPage / one.hostPages) : Infinity;
  const batch = Math.max(0, Math.min(byKv, byHost, maxBatch));
  const limit = batch === maxBatch ? '--max-batch' : byHost < byKv ? 'host pool' : 'device KV';
  return { batch, limit, devicePages: batch * resident + transient + margin, hostPages: batch * one.hostPages };
}

/** Garbage collections ({ startTime, duration } in ms): a long pause costs a step as much as its device work. */
const gcPauses = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ startTime: e.startTime, duration: e.duration });
}).observe({ entryTypes: ['gc'] });

/** How a step ran, from the graph counters around it: replayed, fallback (a replay that differed from its record), recorded (issued, then captured) or eager (no graph: a page starts or fills). */
function stepKind(before, after) {
  if (!before || !after) return 'eager';
  if (after.fallbacks > before.fallbacks) return 'fallback';
  if (after.replayed > before.replayed) return 'replayed';
  return after.recorded > before.recorded ? 'recorded' : 'eager';
}

/** The timed steps: their median, and per kind how many and how long (ms); the GC pauses among them. */
function stepSummary(timed, pauses) {
  const sorted = timed.map((t) => t.ms).sort((a, b) => a - b);
  const byKind = {};
  for (const { ms, kind } of timed) {
    const k = (byKind[kind] ??= { steps: 0, meanMs: 0, maxMs: 0 });
    k.meanMs += (ms - k.meanMs) / ++k.steps;
    k.maxMs = Math.max(k.maxMs, ms);
  }
  for (const k of Object.values(byKind)) [k.meanMs, k.maxMs] = [+k.meanMs.toFixed(2), +k.maxMs.toFixed(2)];
  const round = (x) => +x.toFixed(1);
  return {
    medianMsPerStep: +sorted[Math.floor(sorted.length / 2)].toFixed(2),
    byKind,
    gcMs: round(pauses.reduce((a, b) => a + b, 0)),
    longestGcMs: round(Math.max(0, ...pauses)),
  };
}

const results = [];
const save = () => {
  const full = results.find((r) => r.policy === 'full' && r.tokensPerSecond);
  for (const r of results) if (full && r.tokensPerSecond) r.overFull = +(r.tokensPerSecond / full.tokensPerSecond).toFixed(2);
  const json = JSON.stringify(
    {
      shape,
      backend: describeBackend(backend),
      context,
      kvGB: kvBytes / 1e9,
      hostGB: +(hostBytes / 1e9).toFixed(1),
      pageSize,
      kvDtype,
      steps,
      warmup,
      results,
    },
    null,
    2,
  );
  if (opts.out) writeFileSync(opts.out, json + '\n');
  return json;
};

const forward = await benchForward(config, weights, backend, tokens);
for (const plan of plans) {
  const label = `${plan.policy}${plan.budgetTokens ? ` @ ${plan.budgetTokens}` : ''}`;
  const { batch, limit, devicePages, hostPages } = fit(plan);
  if (batch < 1) {
    results.push({ ...plan, batch, limit, error: `not one ${context}-token sequence fits the ${limit}` });
    log(`${label}: not one sequence fits the ${limit}`);
    save();
    continue;
  }
  let cache;
  let run = null;
  try {
    cache = benchCache(forward, geometry, { ...plan, devicePages, hostPages }, backend, tokens, batch);
    const next = seededUniform(context);
    const prompts = Array.from({ length: batch }, () => Array.from({ length: context }, () => Math.floor(next() * config.vocabSize)));
    // Random weights have no tokenizer: the engine runs on token ids alone, one prompt prefilled per step.
    run = new BatchRun(
      { forward, tokenizer: null, eosIds: [] },
      cache,
      prompts.map((promptIds) => ({ promptIds, maxTokens: tokens - context, ignoreEos: true })),
      { stepTokens: context },
    );
    let started = performance.now();
    for (let prefilled = 0; prefilled < batch; ) prefilled += run.step().prefillTokens / context;
    const prefillMs = performance.now() - started;
    const timed = [];
    for (let s = 0; s < warmup + steps; s++) {
      if (s === warmup) started = performance.now();
      const before = backend.graphStats;
      const t0 = performance.now();
      const step = run.step();
      if (step.decodeRows !== batch) throw new Error(`a timed step decoded ${step.decodeRows} of the ${batch} sequences`);
      if (s >= warmup) timed.push({ ms: performance.now() - t0, kind: stepKind(before, backend.graphStats) });
    }
    const decodeMs = performance.now() - started;
    // GC entries reach the observer from the event loop: let it run, then take the pauses that began in the timed steps.
    await new Promise((r) => setTimeout(r, 50));
    const pauses = gcPauses.filter((e) => e.startTime >= started && e.startTime < started + decodeMs).map((e) => e.duration);
    const row = {
      ...plan,
      batch,
      limit,
      prefillMsPerPrompt: +(prefillMs / batch).toFixed(1),
      // The mean step, what tokens per second is made of: over whole pages of steps it includes the steps where a page starts or fills (eager) and the first of each page's graph (recorded).
      decodeMsPerStep: +(decodeMs / steps).toFixed(2),
      tokensPerSecond: +((batch * steps * 1000) / decodeMs).toFixed(1),
      ...stepSummary(timed, pauses),
    };
    results.push(row);
    log(
      `${label}: batch ${batch} (limited by the ${limit}), ${row.decodeMsPerStep} ms per step (median ${row.medianMsPerStep}), ${row.tokensPerSecond} tokens/s; ${JSON.stringify(row.byKind)}; GC ${row.gcMs} ms`,
    );
  } catch (e) {
    results.push({ ...plan, batch, limit, error: e.message });
    log(`${label}: ${e.message}`);
  } finally {
    run?.close();
    cache?.close();
    save();
  }
}
endBenchForward(forward);
process.stdout.write(save() + '\n');
