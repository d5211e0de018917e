#!/usr/bin/env node
// Decode and prefill at a real model shape with random weights made on the device:
//
//   node tools/bench/decode-bench.mjs [--shape llama2-7b] [--backend cuda] [--dtype f16]
//     [--batch 4] [--contexts 10240,20480,30720] [--plans full,arkvale@2048,arkvale@2048:host,arkvale@2048:eager] [--page-size 32] [--kv-dtype auto]
//     [--steps 16] [--warmup 0] [--shared-embedding 1] [--profile 1] [--out FILE]
//
// (--help lists every option with its default.)
//
// Random weights alone give attention no locality (a budgeted policy would recall most
// of its top-k every step); --shared-embedding (default 1, 0 for independent weights)
// gives every token embedding a common component as trained models' have, so that
// recalls per step are the few a trained model makes. It is reported with the figures.
//
// For each context and plan: one batched prefill of `batch` random prompts (timed, with
// its matrix-product rate), then `steps` greedy decode steps, each ending with the token
// read back as generation does (the median step is reported; --warmup steps run untimed
// first: V8 needs a few dozen steps to compile a step's JavaScript to its final form),
// and the step's HBM floor:
// the bytes it must move (weights, attended KV, digests scanned, recalled pages) over
// the device-to-device copy rate measured at the start of the run. JSON out. A plan
// `policy@budget:host` selects on the host (estimates read and policy.decide run once
// per budgeted layer: the specification) instead of on the device; syncsInStep counts
// the host synchronisations inside the step, the token readback aside. On the CUDA
// backend steps replay as CUDA graphs (graphSteps counts them); `:eager` issues every
// launch of every step instead (the step "without the graph"), and `:checked` replays every
// graph with the step's JavaScript checked call by call (no direct replays: the host's cost
// before issue 22). --profile 1 adds
// a separate run of the same steps with events around each stage (attention, the
// selection's estimate + select, recalls, and rank 0's collectives when the ranks run one per GPU; the rest
// is the model's matrix products and norms) summed per step on the device, so that the timed run stays undisturbed.
// --profiler-steps N runs N more steps inside cudaProfilerStart/Stop, for Nsight Compute
// (`ncu --profile-from-start off`; tools/gpu/ncu-summary.mjs sums its CSV per kernel).
import { writeFileSync } from 'node:fs';
import { createPolicy, kvBytesPerToken, poolPagesFor, resolveCacheOptions, seededUniform } from '@arkvale/core';
import { countParameters, kvGeometry, shapeConfig } from '@arkvale/model-llama';
import { benchCache, benchForward, benchWeights, endBenchForward } from './bench-model.mjs';
import { copyRate, gemmRate } from './device-rates.mjs';
import { BatchRun, batchDevicePages, describeBackend, loadBackend } from '@arkvale/engine';
import { int, list, number, oneOf, parseCommand, UsageError } from '../lib/args.mjs';
import { backendOption, dtypeOption, kvDtypeOption, planSpec, shapeOption, tensorParallelOption } from './model-options.mjs';

/**
 * `policy[@budget][:host][:eager][:checked][:serial]`: a cache plan (model-options' planSpec), selecting on the host,
 * without graphs, without direct replays, or with each step's tokens read before the next step is issued.
 */
const PLAN_FLAGS = ['host', 'eager', 'checked', 'serial'];
const planWithFlags = (p, flag) => {
  const [spec, ...flags] = p.split(':');
  for (const f of flags) if (!PLAN_FLAGS.includes(f)) throw new UsageError(`${flag}: plan ${p}: unknown flag ${f} (${PLAN_FLAGS.join(', ')})`);
  return {
    ...planSpec(spec, flag),
    ...(flags.includes('host') ? { selectOn: 'host' } : {}),
    ...(flags.includes('eager') ? { graphs: false } : {}),
    ...(flags.includes('checked') ? { directReplay: false } : {}),
    ...(flags.includes('serial') ? { overlapSteps: false } : {}),
  };
};

// When a flag is given twice the last one wins, so a wrapper's defaults can be overridden by later arguments.
const { values: opts } = parseCommand({
  usage: 'node tools/bench/decode-bench.mjs [options]',
  about: `Decode and prefill at a real model shape with random weights made on the device: per
context and plan, one batched prefill, then --steps greedy decode steps (the median is
reported) and the step's HBM floor. JSON on stdout (and --out FILE, rewritten after every row).`,
  options: {
    shape: shapeOption,
    backend: backendOption,
    dtype: dtypeOption,
    batch: { type: 'string', value: 'N', default: '4', parse: int({ min: 1 }), help: 'sequences per step' },
    contexts: { type: 'string', value: 'LIST', default: '10240,20480,30720', parse: list(int({ min: 1 })), help: 'prompt lengths in tokens' },
    plans: {
      type: 'string',
      value: 'LIST',
      default: 'full,arkvale@2048',
      parse: list(planWithFlags),
      help: 'policy[@budget][:host][:eager][:checked][:serial], comma-separated',
    },
    'page-size': { type: 'string', value: 'N', default: '32', parse: int({ min: 1 }), help: 'tokens per KV page' },
    'kv-dtype': kvDtypeOption,
    'tensor-parallel': tensorParallelOption,
    steps: {
      type: 'string',
      value: 'N',
      default: '16',
      parse: int({ min: 3 }),
      help: 'timed decode steps per point (the first two are not counted in the median)',
    },
    warmup: { type: 'string', value: 'N', default: '0', parse: int({ min: 0 }), help: 'untimed decode steps before them' },
    'prefill-rows': {
      type: 'string',
      value: 'N',
      default: '65536',
      parse: int({ min: 1 }),
      help: 'prompt rows per prefill pass at most (a batch of 64 prompts of 2k tokens in one pass needs 1 GiB products)',
    },
    'shared-embedding': {
      type: 'string',
      value: 'X',
      default: '1',
      parse: number({ min: 0 }),
      help: 'the common component of every token embedding (0: independent weights)',
    },
    profile: { type: 'string', value: '0|1', default: '0', parse: oneOf('0', '1'), help: '1: a profiled run of each point (device time per stage)' },
    'profiler-steps': {
      type: 'string',
      value: 'N',
      default: '0',
      parse: int({ min: 0 }),
      help: 'after the timed steps, N more inside cudaProfilerStart/Stop (for ncu --profile-from-start off: every kernel of N steps as they run)',
    },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON to FILE' },
  },
});

const shape = opts.shape;
const batch = opts.batch;
const contexts = opts.contexts;
const plans = opts.plans;
const pageSize = opts['page-size'];
const kvDtype = opts['kv-dtype'];
const steps = opts.steps;
const warmup = opts.warmup;
const sharedEmbedding = opts['shared-embedding'];
const log = (t) => process.stderr.write(`${t}\n`);

const backend = await loadBackend({ backend: opts.backend, dtype: opts.dtype, onWarning: (t) => process.stderr.write(t) });
if (opts['profiler-steps'] > 0 && typeof backend.addon?.profilerRange !== 'function') {
  log(`decode-bench: --profiler-steps needs the CUDA backend (this run: ${opts.backend})`);
  process.exit(2);
}
const config = shapeConfig(shape);
let started = performance.now();
const ranks = opts['tensor-parallel'];
// Under tensor parallelism each rank's share, split once.
const weights = await benchWeights(config, backend, ranks, sharedEmbedding, shape);
backend.readSync(backend.argmax(backend.fromArray([0, 1], [1, 2]))); // waits for the weights
log(
  `${shape}: ${(countParameters(config) / 1e9).toFixed(2)}B random parameters (shared embedding x${sharedEmbedding}) on ${describeBackend(backend)} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);

const copyBytesPerMs = copyRate(backend.addon);
const gemmFlopsPerMs = gemmRate(backend.addon);
if (gemmFlopsPerMs) log(`cuBLAS f16 GEMM 8192^3: ${(gemmFlopsPerMs / 1e9).toFixed(0)} TFLOP/s`);
if (copyBytesPerMs) log(`device-to-device copy: ${(copyBytesPerMs / 1e9).toFixed(2)} TB/s`);

/**
 * Bytes one decode step must move at this context: every weight once, the K/V each
 * layer attends (all of it under Full and in unbudgeted leading layers, the budget
 * elsewhere: budgeted policies keep only it, Quest reads only it per head), the
 * digests of every page a selecting layer scores, and the pages recalled (measured).
 */
function stepBytes(geometry, resolved, context, recalledPages) {
  const policy = createPolicy(resolved);
  const elem = geometry.bytesPerElement;
  // K and V as the pages store them (fp8: a byte per value and a scale byte per token and KV head); digests stay in the activation dtype.
  const kvPerToken = kvBytesPerToken(geometry);
  const selective = policy.kind === 'token' || policy.budgeted || policy.digest !== null;
  const limited = selective ? Math.max(0, geometry.numLayers - resolved.fullLayers) : 0;
  const attended = (geometry.numLayers - limited) * context + limited * Math.min(context, resolved.budgetPages * geometry.pageSize);
  const scanned = policy.kind === 'page' && policy.digest !== null ? limited * Math.ceil(context / geometry.pageSize) : 0;
  const digestBytes = 2 * geometry.numKvHeads * geometry.headDim * elem;
  return countParameters(config) * elem + batch * (attended * kvPerToken + scanned * digestBytes) + recalledPages * geometry.pageSize * kvPerToken;
}

const results = [];
/** The report so far, rewritten to --out after every row: a run cut short keeps its rows. */
function save() {
  const report = {
    shape,
    sharedEmbedding,
    backend: describeBackend(backend),
    // Generated kernels launched as programmatic dependents (on by default on sm_90+; ARKVALE_DEPENDENT_LAUNCH=0 turns it off).
    ...('dependentLaunch' in backend ? { dependentLaunch: backend.dependentLaunch } : {}),
    // Decode products of up to 4 rows through gemv (ARKVALE_GEMV=1) rather than cuBLAS.
    ...('gemv' in backend ? { gemv: backend.gemv } : {}),
    // Decode products of up to 64 rows through stream_gemm (ARKVALE_STREAM_GEMM=1) rather than cuBLAS padded to 64 rows.
    ...('streamGemm' in backend ? { streamGemm: backend.streamGemm } : {}),
    // cuBLAS's products of up to 64 rows with the algorithm timed fastest at each shape's first call (on unless ARKVALE_TUNED_PRODUCTS=0), and what each shape chose.
    ...('tunedProducts' in backend ? { tunedProducts: backend.tunedProducts } : {}),
    ...(backend.tunedProducts ? { productChoices: backend.addon.gemmTuning() } : {}),
    pageSize,
    kvDtype,
    steps,
    warmup,
    copyTBps: copyBytesPerMs ? +(copyBytesPerMs / 1e9).toFixed(2) : undefined,
    gemmTflops: gemmFlopsPerMs ? +(gemmFlopsPerMs / 1e9).toFixed(0) : undefined,
    results,
  };
  const json = JSON.stringify(report, null, 2);
  if (opts.out) writeFileSync(opts.out, json + '\n');
  return json;
}

/**
 * Device milliseconds per stage over `run()`, from events around the backend's stage
 * operations: `select` (every policy's decision on the device: ArkVale's and Quest's
 * estimates, top-k and lists, H2O's and TOVA's cell placement and eviction), `recall`,
 * `attention` (paged attention), `collective` (rank 0's all-reduces and all-gathers under
 * tensor parallelism, `comm`: its time includes waiting for the other ranks), and the
 * step as a whole.
 */
function profileStages(run, comm) {
  const addon = backend.addon;
  if (typeof addon?.recordEvent !== 'function') return undefined;
  // Every policy's device decision is its select stage: ArkVale's and Quest's page selections, H2O's and TOVA's cell placement and eviction.
  const stages = {
    select: ['selectResident', 'selectAttend', 'placeTokenCells', 'evictTokenCells'],
    recall: ['recallListed'],
    attention: ['pagedAttention'],
  };
  const marks = Object.fromEntries([...Object.keys(stages), 'collective'].map((k) => [k, []]));
  const restore = [];
  const wrap = (target, method, stage) => {
    const original = target[method];
    restore.push(() => (target[method] = original));
    target[method] = (...args) => {
      const start = addon.recordEvent(0);
      const out = original.apply(target, args);
      marks[stage].push([start, addon.recordEvent(0)]);
      return out;
    };
  };
  for (const [stage, methods] of Object.entries(stages)) {
    for (const method of methods.filter((m) => typeof backend[m] === 'function')) wrap(backend, method, stage);
  }
  if (comm) for (const method of ['allReduceSum', 'allGather']) wrap(comm, method, 'collective');
  const t0 = addon.recordEvent(0);
  try {
    run();
  } finally {
    for (const undo of restore) undo();
  }
  const t1 = addon.recordEvent(0);
  addon.synchronize();
  const out = { stepMs: addon.elapsedMs(t0, t1) };
  for (const [stage, pairs] of Object.entries(marks)) {
    out[`${stage}Ms`] = pairs.reduce((sum, [a, b]) => sum + addon.elapsedMs(a, b), 0);
    for (const e of pairs.flat()) addon.releaseEvent(e);
  }
  addon.releaseEvent(t0);
  addon.releaseEvent(t1);
  return out;
}

/**
 * Runs `run` inside cudaProfilerStart/Stop, so that a profiler started with
 * --profile-from-start off (Nsight Compute) collects its kernels and nothing else: the
 * decode steps as they run, replayed graphs included.
 */
function profilerRange(run) {
  const addon = backend.addon;
  addon.synchronize();
  addon.profilerRange(true);
  try {
    run();
    addon.synchronize();
  } finally {
    addon.profilerRange(false);
  }
}

/**
 * Runs `step` and says how long it took and how long the host took to issue it: until
 * it waits for tokens from the device (the sampler's readSync, or with overlapped steps
 * the read of the previous step's tokens, begun by readLater on an argmax), with the
 * host synchronisations before it (inside the step: a plan selecting on the host reads
 * its estimates).
 */
function timeStep(step) {
  const syncs = () => (typeof backend.addon?.syncCount === 'function' ? backend.addon.syncCount() : undefined);
  const { readSync, readLater, argmax } = backend;
  const t0 = performance.now();
  const syncsAtStart = syncs();
  let issuedAt = null;
  let syncsInStep;
  const waits = () => {
    if (issuedAt !== null) return;
    issuedAt = performance.now();
    syncsInStep = syncsAtStart === undefined ? undefined : syncs() - syncsAtStart;
  };
  const tokenIds = new Set();
  backend.readSync = (...args) => {
    waits();
    return readSync.apply(backend, args);
  };
  backend.argmax = (...args) => {
    const ids = argmax.apply(backend, args);
    tokenIds.add(ids);
    return ids;
  };
  // Tokens held for the next step (overlapped steps) are read there: the wait counts for the step that reads them.
  backend.readLater = (t) => {
    const read = readLater.call(backend, t);
    return tokenIds.has(t) ? { get: () => (onTokenWait(), read.get()) } : read;
  };
  onTokenWait = waits;
  let report;
  try {
    report = step();
  } finally {
    Object.assign(backend, { readSync, readLater, argmax });
    onTokenWait = () => {};
  }
  const end = performance.now();
  return {
    ms: end - t0,
    issueMs: (issuedAt ?? end) - t0,
    syncsInStep,
    syncs: syncsAtStart === undefined ? undefined : syncs() - syncsAtStart,
    overlapped: report.overlapped,
  };
}
/** What a read of held tokens calls when it waits: the timed step's mark. */
let onTokenWait = () => {};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const context of contexts) {
  // Room for the warm-up, timed and profiled steps.
  const tokens = context + warmup + steps + opts['profiler-steps'] + 8;
  const forward = await benchForward(config, weights, backend, tokens);
  // Random weights have no tokenizer: the engine runs on token ids alone.
  const model = { forward, tokenizer: null, eosIds: [] };
  for (const plan of plans) {
    const label = `${plan.policy}${plan.budgetTokens ? ` @ ${plan.budgetTokens}` : ''}${plan.selectOn ? ` (selecting on the ${plan.selectOn})` : ''}${plan.graphs === false ? ' (no graphs)' : ''}${plan.directReplay === false ? ' (replays checked)' : ''}${plan.overlapSteps === false ? ' (steps serial)' : ''}`;
    // Steps replayed as CUDA graphs unless the plan says eager (the CUDA backend's switch; others have none).
    const graphed = 'graphs' in backend;
    if (graphed) {
      backend.graphs = plan.graphs !== false;
      backend.directReplay = plan.directReplay !== false;
    }
    const { graphs: _graphs, directReplay: _direct, overlapSteps, ...cachePlan } = plan;
    const geometry = kvGeometry(config, pageSize, backend.dtype === 'f32' ? 4 : 2, kvDtype);
    const resolved = resolveCacheOptions(geometry, { ...cachePlan, pageSize, devicePages: 1 });
    const devicePages = batchDevicePages(geometry, resolved, tokens, batch);
    const options = { ...cachePlan, devicePages, hostPages: poolPagesFor(geometry, resolved, tokens, batch).hostPages };
    const cache = benchCache(forward, geometry, options, backend, tokens, batch);
    let run = null;
    try {
      const next = seededUniform(context);
      const prompts = Array.from({ length: batch }, () => Array.from({ length: context }, () => Math.floor(next() * config.vocabSize)));
      // The engine's offline run, stepped here: the first steps prefill the prompts, as many
      // in one pass as --prefill-rows allows (and read back each one's first token), each
      // later one is a greedy decode step of the batch.
      run = new BatchRun(
        model,
        cache,
        prompts.map((promptIds) => ({ promptIds, maxTokens: tokens - context, ignoreEos: true })),
        { stepTokens: Math.max(context, opts['prefill-rows']), ...(overlapSteps === false ? { overlapSteps } : {}) },
      );
      started = performance.now();
      for (let prefilled = 0; prefilled < batch * context; ) prefilled += run.step().prefillTokens;
      const prefillMs = performance.now() - started;
      for (let s = 0; s < warmup; s++) run.step();
      const timed = [];
      const recallsBefore = cache.stats().recalls;
      const graphsBefore = graphed ? backend.graphStats : undefined;
      for (let s = 0; s < steps; s++) timed.push(timeStep(() => run.step()));
      const times = timed.map((t) => t.ms);
      // Host time to issue a step (before the token readback waits): above the step time's device share, the host is the bottleneck.
      const issueTimes = timed.map((t) => t.issueMs);
      const countedSyncs = timed[0].syncs !== undefined;
      // Matrix-product work of the prefill: every weight per token, and causal attention (QK and PV, half the square).
      const attentionFlops = 2 * 2 * config.numLayers * config.numHeads * config.headDim * ((context * (context + 1)) / 2);
      const prefillFlops = batch * (2 * countParameters(config) * context + attentionFlops);
      const bytes = stepBytes(geometry, resolved, context, (cache.stats().recalls - recallsBefore) / steps);
      const decodeMs = median(times.slice(2));
      const graphsAfter = graphed ? backend.graphStats : undefined;
      if (opts['profiler-steps'] > 0)
        profilerRange(() => {
          for (let s = 0; s < opts['profiler-steps']; s++) run.step();
        });
      let stages;
      if (opts.profile === '1') {
        // Events inside a step keep it from being a graph: the profiled steps run call by call.
        if (graphed) backend.graphs = false;
        const profiled = 4;
        const total = profileStages(() => {
          for (let s = 0; s < profiled; s++) run.step();
        }, forward.communicator);
        if (total) {
          stages = Object.fromEntries(Object.entries(total).map(([k, v]) => [k, +(v / profiled).toFixed(3)]));
          stages.restMs = +(stages.stepMs - stages.selectMs - stages.recallMs - stages.attentionMs - stages.collectiveMs).toFixed(3);
          stages.selectionShare = +((stages.selectMs + stages.recallMs) / stages.stepMs).toFixed(3);
          // Under tensor parallelism (ranks one per GPU): the all-reduces' and all-gathers' share of the step.
          if (forward.communicator) stages.collectiveShare = +(stages.collectiveMs / stages.stepMs).toFixed(3);
        }
      }
      const row = {
        context,
        batch,
        ...plan,
        ...(ranks > 1 ? { tensorParallel: ranks } : {}),
        // The first sequence's first tokens: runs that should agree (tensor-parallel sizes) can be compared.
        firstTokens: run.tokenIds[0].slice(0, 16),
        prefillMs: +prefillMs.toFixed(1),
        prefillTflops: +(prefillFlops / prefillMs / 1e9).toFixed(1),
        prefillOfGemmRate: gemmFlopsPerMs ? +(prefillFlops / prefillMs / gemmFlopsPerMs).toFixed(2) : undefined,
        decodeMsPerStep: +decodeMs.toFixed(2),
        // The mean over every timed step: with graphs, steps where a page starts or fills run call by call (once per page of steps).
        meanMsPerStep: +(times.reduce((a, b) => a + b, 0) / times.length).toFixed(2),
        issueMsPerStep: +median(issueTimes.slice(2)).toFixed(2),
        // Timed steps that fed from the step before on the device, issued before its tokens were read (overlapped steps).
        overlappedSteps: timed.filter((t) => t.overlapped).length,
        tokensPerSecond: +((batch * 1000) / decodeMs).toFixed(1),
        recalls: cache.stats().recalls,
        recallsPerStep: +((cache.stats().recalls - recallsBefore) / steps).toFixed(1),
        bytesPerStepGB: +(bytes / 1e9).toFixed(2),
        floorMs: copyBytesPerMs ? +(bytes / copyBytesPerMs).toFixed(2) : undefined,
        overFloor: copyBytesPerMs ? +(decodeMs / (bytes / copyBytesPerMs)).toFixed(2) : undefined,
        // Host synchronisations per decode step (the token readback is one), and those inside the step.
        syncsPerStep: countedSyncs ? timed.reduce((n, t) => n + t.syncs, 0) / steps : undefined,
        syncsInStep: countedSyncs ? timed.reduce((n, t) => n + t.syncsInStep, 0) / steps : undefined,
        // The timed steps: how many ran as graph replays, were recorded (and captured), or fell back.
        graphSteps: graphsAfter
          ? {
              replayed: graphsAfter.replayed - graphsBefore.replayed,
              direct: graphsAfter.direct - graphsBefore.direct,
              recorded: graphsAfter.recorded - graphsBefore.recorded,
              instances: graphsAfter.instances - graphsBefore.instances,
              fallbacks: graphsAfter.fallbacks - graphsBefore.fallbacks,
              ...(graphsAfter.lastFallback ? { lastFallback: graphsAfter.lastFallback } : {}),
            }
          : undefined,
        stages,
      };
      results.push(row);
      log(
        `context ${context}, batch ${batch}, ${label}: prefill ${row.prefillMs} ms (${row.prefillTflops} TFLOP/s, ${row.prefillOfGemmRate ?? '?'} of cuBLAS), decode ${row.decodeMsPerStep} ms/step (mean ${row.meanMsPerStep}; issued in ${row.issueMsPerStep} ms; ${row.overlappedSteps} of ${steps} overlapped; ${row.tokensPerSecond} tok/s; floor ${row.floorMs ?? '?'} ms for ${row.bytesPerStepGB} GB), ${row.recallsPerStep} recalls/step, ${row.syncsPerStep ?? '?'} syncs/step (${row.syncsInStep ?? '?'} inside)${row.graphSteps ? `, graphs ${JSON.stringify(row.graphSteps)}` : ''}${stages ? `; stages per step: ${JSON.stringify(stages)}` : ''}`,
      );
    } catch (e) {
      results.push({ context, batch, ...plan, error: e.message });
      log(`context ${context}, batch ${batch}, ${label}: ${e.message}`);
    } finally {
      run?.close();
      cache.close();
      save();
    }
  }
  endBenchForward(forward);
}
process.stdout.write(save() + '\n');
