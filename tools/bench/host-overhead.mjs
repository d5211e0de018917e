#!/usr/bin/env node
// What a decode step costs the host, with no GPU: the CUDA backend's JavaScript over an
// addon whose calls do nothing (launches, allocations, copies and events return at
// once; reads return zeros). Run it under `node --cpu-prof` to see where the host's
// share of a step goes; the real addon adds each call's N-API and CUDA driver cost.
//
//   node tools/bench/host-overhead.mjs [--shape llama2-7b] [--context 30720] [--batch 4]
//     [--plan arkvale@2048] [--select-on device|host] [--graphs 1|0] [--steps 50] [--page-size 32]
//     [--overlap-steps 1|0] [--profile FILE] [--print-times 1]
//
// --profile writes a V8 CPU profile of the decode steps alone (after five warm-up steps).
// hostMsByKind splits the host's time by kind of step: replayed as a graph, recorded (the
// first under its key), fallback, and the steps where a page starts or fills (no key).
// The addon's device lags: nothing it is given is done until the host waits for it, as
// on a GPU whose step outlasts the host's issue. stepsIssuedBehind counts the steps
// issued while the whole step before still ran (overlapped steps are; a wait for the
// device inside a step's issue is where a GPU would idle).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { KvCache, POLICY_NAMES, poolPagesFor, resolveCacheOptions } from '@arkvale/core';
import { CudaBackend, idleCudaAddon } from '@arkvale/cuda-binding';
import { BatchRun, batchDevicePages } from '@arkvale/engine';
import { kvGeometry, LlamaForward, randomLlamaWeights, shapeConfig } from '@arkvale/model-llama';
import { int, oneOf, parseCommand, UsageError } from '../lib/args.mjs';
import { shapeOption } from './model-options.mjs';

const { values: opts } = parseCommand({
  usage: 'node tools/bench/host-overhead.mjs [options]',
  about: `What a decode step costs the host, with no GPU: the CUDA backend's JavaScript over an
addon whose calls do nothing. Prints one JSON line: the median host time per step (after
five warm-up steps), the same by kind of step (replayed, recorded, page start, page fill),
the addon calls per step, and how many steps were issued while the whole step before
still ran on the device (which does nothing until the host waits for it).`,
  options: {
    shape: shapeOption,
    context: { type: 'string', value: 'N', default: '30720', parse: int({ min: 1 }), help: 'tokens per sequence' },
    batch: { type: 'string', value: 'N', default: '4', parse: int({ min: 1 }), help: 'sequences per step' },
    plan: {
      type: 'string',
      value: 'PLAN',
      default: 'arkvale@2048',
      parse: (p, flag) => {
        const [policy, budget] = p.split('@');
        if (!POLICY_NAMES.includes(policy)) throw new UsageError(`${flag}: unknown policy ${policy} (${POLICY_NAMES.join(', ')})`);
        if (budget !== undefined && !(Number.isInteger(Number(budget)) && Number(budget) > 0))
          throw new UsageError(`${flag}: plan ${p}: the budget must be a whole number of tokens`);
        return { policy, budgetTokens: budget ? Number(budget) : undefined };
      },
      help: 'policy[@budget]',
    },
    'select-on': { type: 'string', value: 'WHERE', parse: oneOf('device', 'host'), help: "device or host (default: the policy's)" },
    graphs: { type: 'string', value: '1|0', default: '1', parse: oneOf('1', '0'), help: '0: no CUDA graphs' },
    'overlap-steps': {
      type: 'string',
      value: '1|0',
      default: '1',
      parse: oneOf('1', '0'),
      help: "0: each step's tokens read before the next is issued",
    },
    steps: { type: 'string', value: 'N', default: '50', parse: int({ min: 6 }), help: 'decode steps (the first five are not counted)' },
    'page-size': { type: 'string', value: 'N', default: '32', parse: int({ min: 1 }), help: 'tokens per KV page' },
    profile: { type: 'string', value: 'FILE', help: 'write a V8 CPU profile of the steps after the first five to FILE' },
    'print-times': { type: 'string', value: '1', help: "also print every step's time (ms) to stderr" },
  },
});

const shape = opts.shape;
const context = opts.context;
const batch = opts.batch;
const steps = opts.steps;
const { policy, budgetTokens: budget } = opts.plan;
const pageSize = opts['page-size'];
const { addon, counts, device } = idleCudaAddon({ lagging: true });
const backend = new CudaBackend({ addon, dtype: 'f16', graphs: opts.graphs !== '0' });
const config = shapeConfig(shape);
const weights = randomLlamaWeights(config, backend, 7);
const forward = new LlamaForward(config, weights, backend, context + steps + 1);
const geometry = kvGeometry(config, pageSize, 2);
const plan = { policy, budgetTokens: budget, pageSize, ...(opts['select-on'] ? { selectOn: opts['select-on'] } : {}) };
const resolved = resolveCacheOptions(geometry, { ...plan, devicePages: 1 });
const tokens = context + steps + 1;
const devicePages = batchDevicePages(geometry, resolved, tokens, batch);
const cache = new KvCache({ geometry, options: { ...plan, devicePages, hostPages: poolPagesFor(geometry, resolved, tokens, batch).hostPages }, backend });
const prompt = Array.from({ length: context }, (_, i) => i % config.vocabSize);
// The engine's offline run on token ids alone (random weights have no tokenizer), stepped here:
// the first step prefills every prompt, each later one is a greedy decode step of the batch.
const run = new BatchRun(
  { forward, tokenizer: null, eosIds: [] },
  cache,
  Array.from({ length: batch }, () => ({ promptIds: prompt, maxTokens: steps + 1, ignoreEos: true })),
  { overlapSteps: opts['overlap-steps'] === '1' },
);
run.step();
const times = [];
counts.clear();
// Each step's kind: where a page starts or fills the step has no graph key (KvCache.graphKey)
// and runs call by call; otherwise it is recorded (first under its key), replayed, or
// falls back. Every sequence of the batch has the same length here, so one tells.
const kinds = [];
// Steps after the first five, and those whose first work went out with none of the step before done.
const behind = { steps: 0, behind: 0 };
let lastFirst = device.issued + 1;
let graphsSeen = backend.graphStats;
const stepKind = () => {
  // Not rawSequences: it settles every recall plan, a wait the engine's steps do not make.
  const length = cache.length(cache.sequenceIds[0]);
  if (length % pageSize === 0) return 'pageStart';
  if ((length + 1) % pageSize === 0) return 'pageFill';
  return opts.graphs === '0' ? 'eager' : 'graphed';
};
const graphOutcome = () => {
  const now = backend.graphStats;
  const kind = now.replayed > graphsSeen.replayed ? 'replayed' : now.fallbacks > graphsSeen.fallbacks ? 'fallback' : 'recorded';
  graphsSeen = now;
  return kind;
};
const profileFile = opts.profile;
const session = profileFile ? new Session() : null;
for (let s = 0; s < steps; s++) {
  if (session && s === 5) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const kind = stepKind();
  const first = device.issued + 1;
  const t0 = performance.now();
  run.step();
  times.push(performance.now() - t0);
  kinds.push(kind === 'graphed' ? graphOutcome() : kind);
  if (s >= 5) {
    behind.steps++;
    if (device.doneWhenIssued(first) < lastFirst) behind.behind++;
  }
  lastFirst = first;
}
if (session) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(profileFile, JSON.stringify(profile));
}
if (opts['print-times']) process.stderr.write(times.map((t) => t.toFixed(1)).join(' ') + '\n');
const sorted = times.slice(5).sort((a, b) => a - b);
const medianOf = (xs) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(3);
// The host's time per step by kind, after the first five (issue 22 asks it for replayed, page-start and page-fill steps).
const byKind = {};
times.slice(5).forEach((t, i) => (byKind[kinds[i + 5]] ??= []).push(t));
const hostMsByKind = Object.fromEntries(Object.entries(byKind).map(([k, xs]) => [k, { steps: xs.length, medianMs: medianOf(xs) }]));
const perStep = Object.fromEntries([...counts].map(([k, v]) => [k, +(v / steps).toFixed(1)]));
process.stdout.write(
  `${JSON.stringify({ shape, context, batch, plan, hostMsPerStep: +sorted[Math.floor(sorted.length / 2)].toFixed(3), hostMsByKind, p10: +sorted[Math.floor(sorted.length / 10)].toFixed(3), p90: +sorted[Math.floor((sorted.length * 9) / 10)].toFixed(3), addonCallsPerStep: perStep, graphs: backend.graphStats, stepsIssuedBehind: behind })}\n`,
);
run.close();
cache.close();
