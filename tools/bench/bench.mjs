#!/usr/bin/env node
// `pnpm bench [--backend auto|cuda|cpu|reference] [--quick] [--serving] [--out FILE]`: the
// same generation work on the bundled model for every system compared, timed in one run,
// written as JSON (stdout, and --out FILE).
//   - backends: the native CPU backend (and CUDA, when usable) against the
//     plain-TypeScript reference
//   - policies: Full against ArkVale and the baselines at long context, on --backend
//     (default auto: CUDA when usable, else the CPU backend)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { seededUniform } from '@arkvale/core';
import { cpuBackendInfo } from '@arkvale/cpu-backend';
import { LlamaEngine } from '@arkvale/model-llama';
import { cudaStatus } from '@arkvale/cuda-binding';
import { describeBackend, generateBatch, loadBackend } from '@arkvale/engine';
import { buildPasskeyPrompt, readFiller } from '@arkvale/cli';
import { int, list, number, oneOf, parseCommand } from '../lib/args.mjs';
import { dtypeOption, planSpec, pointSpec, rateSpec, shapeOption, tensorParallelOption, WORKLOADS } from './model-options.mjs';

const { values: opts } = parseCommand({
  usage: 'pnpm bench [options]   (or node tools/bench/bench.mjs [options] after pnpm build)',
  about: `The same generation work on the bundled model (models/tiny-retrieval) for every system
compared, timed in one run, as JSON on stdout: the native CPU backend (and CUDA, when
usable) against the plain-TypeScript reference, then Full against ArkVale and the
baselines at long context on --backend. --serving runs the serving benchmark instead:
on the bundled model, a worker engine at 1, 8 and 64 concurrent clients (serving-bench.mjs);
with --shape, the model-scale workloads through the OpenAI routes (serving-workloads.mjs).
--server-steps --shape NAME times the server's decode-only steps at --points and checks
batch invariance through it (server-steps.mjs; compare decode-bench.mjs at the same points).`,
  options: {
    backend: {
      type: 'string',
      value: 'NAME',
      default: 'auto',
      parse: oneOf('auto', 'cuda', 'cpu', 'reference'),
      help: 'the backend the policies run on (auto: CUDA when usable, else cpu)',
    },
    quick: { type: 'boolean', help: 'one repeat, one context (2048), fewer decode tokens' },
    serving: { type: 'boolean', help: 'the serving benchmark instead' },
    'server-steps': { type: 'boolean', help: "with --shape: the server's decode steps at --points, and batch invariance through it" },
    points: {
      type: 'string',
      value: 'LIST',
      default: '4x30720,64x2048',
      parse: list(pointSpec),
      help: 'with --server-steps: batch x context tokens, comma-separated',
    },
    invariance: {
      type: 'string',
      value: 'LIST',
      default: '4,16,64',
      parse: list(int({ min: 2 })),
      help: 'with --server-steps: batch sizes a prompt is checked in against itself alone',
    },
    'invariance-context': {
      type: 'string',
      value: 'N',
      default: '2048',
      parse: int({ min: 1 }),
      help: 'with --server-steps: prompt tokens of the invariance check',
    },
    shape: {
      ...shapeOption,
      default: undefined,
      help: `with --serving: random weights at this shape ${shapeOption.help.replace(/^the model shape /, '')} and the model-scale workloads`,
    },
    dtype: dtypeOption,
    workloads: { type: 'string', value: 'LIST', default: WORKLOADS.join(','), parse: list(oneOf(...WORKLOADS)), help: 'with --shape: the serving workloads' },
    plans: {
      type: 'string',
      value: 'LIST',
      default: 'full,arkvale@512,arkvale@2048',
      parse: list(planSpec),
      help: 'with --shape: policy[@budget], comma-separated',
    },
    'tensor-parallel': { ...tensorParallelOption, help: `with --shape: ${tensorParallelOption.help}` },
    'kv-gb': {
      type: 'string',
      value: 'GB',
      default: '40',
      parse: number({ above: 0 }),
      help: "with --shape: the device KV pool in GB (the paper's throughput setting)",
    },
    scale: {
      type: 'string',
      value: 'F',
      default: '1',
      parse: number({ above: 0 }),
      help: "with --shape: multiplies every workload's token counts (0.02 for a CPU smoke run)",
    },
    rates: {
      type: 'string',
      value: 'LIST',
      default: 'inf',
      parse: list(rateSpec),
      help: 'with --shape: request rates per second of the long workload (inf: all at once)',
    },
    requests: { type: 'string', value: 'N', default: '32', parse: int({ min: 1 }), help: 'with --shape: requests of the long workload' },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON to FILE' },
  },
});

// The repository root: two levels up, from tools/bench/ and from the GPU bundle (.gpu/bundle/bench.mjs) alike.
const root = resolve(import.meta.dirname, '../..');
const modelDir = join(root, 'models', 'tiny-retrieval');
const outFile = opts.out ?? null;
const quick = opts.quick;
const backendName = opts.backend;
const log = (t) => process.stderr.write(`${t}\n`);

if (opts['server-steps']) {
  if (!opts.shape) {
    console.error('bench: --server-steps needs --shape');
    process.exit(2);
  }
  const { serverSteps } = await import('./server-steps.mjs');
  const plan = opts.plans.at(-1);
  const report = await serverSteps({
    shape: opts.shape,
    backend: backendName,
    dtype: opts.dtype,
    tensorParallel: opts['tensor-parallel'],
    policy: plan.policy,
    budgetTokens: plan.budgetTokens ?? 512,
    points: opts.points,
    invariance: opts.invariance,
    invarianceContext: opts['invariance-context'],
    log,
  });
  const json = JSON.stringify(report, null, 2);
  process.stdout.write(json + '\n');
  if (outFile) writeFileSync(outFile, json + '\n');
  process.exit(0);
}

if (opts.serving && opts.shape) {
  // `pnpm bench --serving --shape llama2-7b`: the model-scale serving workloads.
  const { servingWorkloads } = await import('./serving-workloads.mjs');
  const report = await servingWorkloads({
    shape: opts.shape,
    backend: backendName,
    dtype: opts.dtype,
    tensorParallel: opts['tensor-parallel'],
    plans: opts.plans,
    workloads: opts.workloads,
    kvGB: opts['kv-gb'],
    scale: opts.scale,
    rates: opts.rates,
    requests: opts.requests,
    log,
  });
  const json = JSON.stringify(report, null, 2);
  process.stdout.write(json + '\n');
  if (outFile) writeFileSync(outFile, json + '\n');
  process.exit(0);
}

if (opts.serving) {
  // `pnpm bench --serving`: the serving engine (worker thread, continuous batching) at
  // 1, 8 and 64 concurrent clients; see serving-bench.mjs.
  const { servingBench } = await import('./serving-bench.mjs');
  const report = await servingBench({ modelDir, quick, log });
  const json = JSON.stringify(report, null, 2);
  process.stdout.write(json + '\n');
  if (outFile) writeFileSync(outFile, json + '\n');
  process.exit(0);
}

const warn = (t) => process.stderr.write(t);
const cpu = await LlamaEngine.load(modelDir, await loadBackend({ backend: 'cpu', onWarning: warn }));
const reference = await LlamaEngine.load(modelDir, await loadBackend({ backend: 'reference' }));
const gpu = cudaStatus();
const cuda = gpu.available ? await LlamaEngine.load(modelDir, await loadBackend({ backend: 'cuda', onWarning: warn })) : null;
// The engine the policies run on (auto: CUDA when usable, else the CPU backend).
if (backendName === 'cuda' && !cuda) {
  await loadBackend({ backend: 'cuda', onWarning: warn }).catch((e) => {
    console.error(`bench: ${e.message}`); // the reason CUDA cannot be used
    process.exit(2);
  });
}
const main = { auto: cuda ?? cpu, cuda, cpu, reference }[backendName];
const filler = readFiller(join(modelDir, 'filler.txt'));
const prompt = (length) => buildPasskeyPrompt(cpu.model.tokenizer, filler, length, 0.5, seededUniform(length)).ids;

const repeats = quick ? 1 : 3;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Prefill and a fixed number of decode steps, `repeats` times; medians in milliseconds. */
function run(engine, ids, plan, decodeTokens) {
  const runs = Array.from({ length: repeats }, () => generateBatch(engine, [{ promptIds: ids, maxTokens: decodeTokens, ignoreEos: true }], plan));
  const r = runs[0];
  return {
    promptTokens: ids.length,
    decodeTokens: r.timings.decodeSteps,
    repeats,
    prefillMs: +median(runs.map((x) => x.timings.prefillMs)).toFixed(2),
    decodeMsPerStep: +median(runs.map((x) => x.timings.decodeMs / Math.max(1, x.timings.decodeSteps))).toFixed(3),
    recalls: r.kv.recalls,
    residentPages: r.kv.residentPages,
  };
}

// Warm both backends up (JIT, thread pool, page faults) before anything is timed.
for (const engine of [cpu, reference, ...(cuda ? [cuda] : [])])
  generateBatch(engine, [{ promptIds: prompt(128), maxTokens: 4, ignoreEos: true }], { policy: 'full', pageSize: 16 });

const results = { backends: [], policies: [] };

// Backends: identical work (Full, a 256-token prompt, 16 tokens).
const small = prompt(256);
for (const [name, engine] of [['reference', reference], ['cpu', cpu], ...(cuda ? [[describeBackend(cuda.backend), cuda]] : [])]) {
  log(`backend ${name}`);
  results.backends.push({ backend: name, ...run(engine, small, { policy: 'full', pageSize: 16 }, 16) });
}
const [refRow, cpuRow, cudaRow] = results.backends;

// Policies at long context on the chosen backend: identical prompts and token counts.
const lengths = quick ? [2048] : [2048, 8192];
const plans = [
  { policy: 'full' },
  { policy: 'arkvale', budgetTokens: 512 },
  { policy: 'arkvale', budgetTokens: 1024 },
  { policy: 'quest', budgetTokens: 512 },
  { policy: 'streaming-llm', budgetTokens: 512 },
];
for (const length of lengths) {
  const ids = prompt(length);
  for (const plan of plans) {
    log(`length ${length}: ${plan.policy}${plan.budgetTokens ? ` @ ${plan.budgetTokens}` : ''}`);
    results.policies.push({ length, ...plan, ...run(main, ids, { ...plan, pageSize: 32 }, quick ? 16 : 64) });
  }
}

const full = (length) => results.policies.find((r) => r.length === length && r.policy === 'full');
const report = {
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, native: cpuBackendInfo(), gpu: gpu.summary },
  model: 'tiny-retrieval',
  policiesBackend: describeBackend(main.backend),
  results,
  ratios: {
    cpuOverReferencePrefill: +(refRow.prefillMs / cpuRow.prefillMs).toFixed(1),
    cpuOverReferenceDecode: +(refRow.decodeMsPerStep / cpuRow.decodeMsPerStep).toFixed(1),
    ...(cudaRow
      ? {
          cudaOverCpuPrefill: +(cpuRow.prefillMs / cudaRow.prefillMs).toFixed(1),
          cudaOverCpuDecode: +(cpuRow.decodeMsPerStep / cudaRow.decodeMsPerStep).toFixed(1),
        }
      : {}),
    decodeSpeedupOverFull: results.policies
      .filter((r) => r.policy !== 'full')
      .map((r) => ({
        length: r.length,
        policy: r.policy,
        budgetTokens: r.budgetTokens,
        speedup: +(full(r.length).decodeMsPerStep / r.decodeMsPerStep).toFixed(2),
      })),
  },
};
const json = JSON.stringify(report, null, 2);
process.stdout.write(json + '\n');
if (outFile) writeFileSync(outFile, json + '\n');
