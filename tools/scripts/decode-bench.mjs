#!/usr/bin/env node
// Decode and prefill at a real model shape with random weights made on the device:
//
//   node tools/scripts/decode-bench.mjs [--shape llama2-7b] [--backend cuda] [--dtype f16]
//     [--batch 4] [--contexts 10240,20480,30720] [--plans full,arkvale@2048] [--page-size 32]
//     [--steps 16] [--out FILE]
//
// For each context and plan: one batched prefill of `batch` random prompts (timed, with
// its matrix-product rate), then `steps` greedy decode steps, each ending with the token
// read back as generation does (the median step is reported). JSON out. The engine as
// it is: the decode path still reads page scores on the host once per budgeted layer
// and sequence, so ArkVale's figures here include those synchronisations.
import { writeFileSync } from 'node:fs';
import { KvCache, poolPagesFor, resolveCacheOptions, seededUniform } from '../../packages/core/dist/index.js';
import { countParameters, kvGeometry, LlamaForward, randomLlamaWeights, shapeConfig } from '../../packages/model-llama/dist/index.js';
import { createBackend, describeBackend } from '../../packages/cli/dist/options.js';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const shape = option('shape', 'llama2-7b');
const batch = Number(option('batch', '4'));
const contexts = option('contexts', '10240,20480,30720').split(',').map(Number);
const plans = option('plans', 'full,arkvale@2048').split(',').map((p) => {
  const [policy, budget] = p.split('@');
  return { policy, budgetTokens: budget ? Number(budget) : undefined };
});
const pageSize = Number(option('page-size', '32'));
const steps = Number(option('steps', '16'));
const log = (t) => process.stderr.write(`${t}\n`);

const backend = createBackend(option('backend', 'auto'), (t) => process.stderr.write(t), { dtype: option('dtype') });
const config = shapeConfig(shape);
let started = performance.now();
const weights = randomLlamaWeights(config, backend, 7);
backend.readSync(backend.argmax(backend.fromArray([0, 1], [1, 2]))); // waits for the weights
log(`${shape}: ${(countParameters(config) / 1e9).toFixed(2)}B random parameters on ${describeBackend(backend)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [];
for (const context of contexts) {
  const forward = new LlamaForward(config, weights, backend, context + steps + 1);
  for (const plan of plans) {
    const label = `${plan.policy}${plan.budgetTokens ? ` @ ${plan.budgetTokens}` : ''}`;
    const geometry = kvGeometry(config, pageSize, backend.dtype === 'f32' ? 4 : 2);
    const resolved = resolveCacheOptions(geometry, { ...plan, pageSize, devicePages: 1 });
    const pools = poolPagesFor(geometry, resolved, context + steps, batch);
    const cache = new KvCache({ geometry, options: { ...plan, ...pools }, backend });
    try {
      const next = seededUniform(context);
      const prompts = Array.from({ length: batch }, () => Array.from({ length: context }, () => Math.floor(next() * config.vocabSize)));
      const ids = prompts.map((p) => cache.admit(p.length));
      started = performance.now();
      let tokens = Array.from(backend.readSync(backend.tidy(() => backend.argmax(forward.prefill(cache, ids.map((id, i) => ({ id, tokens: prompts[i] })))))));
      const prefillMs = performance.now() - started;
      const times = [];
      const syncs = () => (typeof backend.addon?.syncCount === 'function' ? backend.addon.syncCount() : undefined);
      const syncsBefore = syncs();
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        tokens = Array.from(backend.readSync(backend.tidy(() => backend.argmax(forward.decode(cache, ids, tokens)))));
        times.push(performance.now() - t0);
      }
      const prefillFlops = 2 * countParameters(config) * batch * context;
      const row = {
        context,
        batch,
        ...plan,
        prefillMs: +prefillMs.toFixed(1),
        prefillTflops: +(prefillFlops / prefillMs / 1e9).toFixed(1),
        decodeMsPerStep: +median(times.slice(2)).toFixed(2),
        tokensPerSecond: +((batch * 1000) / median(times.slice(2))).toFixed(1),
        recalls: cache.stats().recalls,
        // Host synchronisations per decode step (the token readback is one).
        syncsPerStep: syncsBefore === undefined ? undefined : (syncs() - syncsBefore) / steps,
      };
      results.push(row);
      log(`context ${context}, batch ${batch}, ${label}: prefill ${row.prefillMs} ms (${row.prefillTflops} TFLOP/s of weights), decode ${row.decodeMsPerStep} ms/step (${row.tokensPerSecond} tok/s), ${row.recalls} recalls`);
    } catch (e) {
      results.push({ context, batch, ...plan, error: e.message });
      log(`context ${context}, batch ${batch}, ${label}: ${e.message}`);
    } finally {
      cache.close();
    }
  }
}
const report = { shape, backend: describeBackend(backend), pageSize, steps, results };
const json = JSON.stringify(report, null, 2);
process.stdout.write(json + '\n');
const out = option('out');
if (out) writeFileSync(out, json + '\n');
