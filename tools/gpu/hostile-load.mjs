// Hostile load at model scale (issue 21): `arkvale serve`'s parts (a worker engine behind
// the OpenAI routes) on loopback at a model shape, and N hostile requests at once around
// prompts of --context tokens: clients that vanish while their prompt is prefilled or
// queued, clients that vanish mid-stream, malformed bodies, prompts over the model's
// limit. Each must be answered (a 4xx in OpenAI's shape) or ended cleanly, the server must
// keep serving (a last completion), and no page may leak: at the end every page still in
// use is one only the prefix cache holds, and closing the engine frees every page.
//
//   node tools/gpu/hostile-load.mjs --shape llama2-7b --backend cuda [--requests 200] [--context 30720] [--out FILE]
import { writeFileSync } from 'node:fs';
import { seededUniform } from '@arkvale/core';
import { WorkerEngine } from '@arkvale/engine';
import { shapeConfig } from '@arkvale/model-llama';
import { createArkvaleServer } from '@arkvale/server';
import { int, parseCommand } from '../lib/args.mjs';
import { backendOption, planSpec, shapeOption } from '../bench/model-options.mjs';

const { values: opts } = parseCommand({
  usage: 'node tools/gpu/hostile-load.mjs [options]',
  about: 'Hostile requests at model scale against the server; JSON out. Exit code 1 when a request was not answered cleanly or a page leaked.',
  options: {
    shape: shapeOption,
    backend: backendOption,
    plan: { type: 'string', value: 'PLAN', default: 'arkvale@2048', parse: planSpec, help: 'policy[@budget] of every request' },
    requests: { type: 'string', value: 'N', default: '200', parse: int({ min: 10 }), help: 'hostile requests in all' },
    context: { type: 'string', value: 'N', default: '30720', parse: int({ min: 64 }), help: 'prompt tokens of the long requests' },
    streamed: {
      type: 'string',
      value: 'N',
      default: '8',
      parse: int({ min: 0 }),
      help: 'of them, clients that vanish mid-stream (each prefills a prompt whole first)',
    },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON to FILE' },
  },
});

const log = (t) => process.stderr.write(`${t}\n`);
const config = shapeConfig(opts.shape);
const uniform = seededUniform(3);
const ids = (n) => Array.from({ length: n }, () => 1 + Math.floor(uniform() * (config.vocabSize - 1)));
const engine = await WorkerEngine.start({
  shape: opts.shape,
  backend: opts.backend,
  pageSize: 32,
  policy: opts.plan.policy,
  budgetTokens: opts.plan.budgetTokens ?? 512,
  onLog: (t) => process.stderr.write(t),
});
const server = createArkvaleServer({ engine });
const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
const model = engine.model.id;
const post = (body, signal, type = 'application/json') =>
  fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body), signal });

/** Malformed bodies: each must get a 4xx with an OpenAI error. */
const BAD = [
  '{"model": "m", "prompt": ',
  'not json',
  JSON.stringify({ model, prompt: [1, 2], max_tokens: -1 }),
  JSON.stringify({ model, prompt: [1, 2], kv_policy: 'lru' }),
  JSON.stringify({ model, prompt: [-5] }),
  JSON.stringify({ model, prompt: [config.vocabSize + 7] }),
  JSON.stringify({ model, prompt: 'text, but this model has token ids only' }),
  JSON.stringify({ model: 'gpt-4o', prompt: [1] }),
  JSON.stringify({ model, prompt: [1], cache_prefix: 'no' }),
];

const outcomes = { answered4xx: 0, vanishedMidPrefill: 0, vanishedMidStream: 0, overLong: 0, unclean: [] };
const unclean = (what, detail) => outcomes.unclean.push({ what, detail: String(detail) });

async function badBody(i) {
  const res = await post(BAD[i % BAD.length]);
  const body = await res.json().catch(() => null);
  if (res.status >= 400 && res.status < 500 && body?.error?.message) outcomes.answered4xx++;
  else unclean('bad body', `${res.status} ${JSON.stringify(body)}`);
}

async function overLong() {
  const res = await post({ model, prompt: ids(engine.model.maxPositions + 1), max_tokens: 4 });
  const body = await res.json().catch(() => null);
  if (res.status === 400 && body?.error?.code === 'context_length_exceeded') outcomes.overLong++;
  else unclean('over-long prompt', `${res.status} ${JSON.stringify(body)}`);
}

async function vanishMidPrefill() {
  const controller = new AbortController();
  const req = post({ model, prompt: ids(opts.context), max_tokens: 16, stream: true }, controller.signal);
  setTimeout(() => controller.abort(), 200 + uniform() * 3000);
  try {
    const res = await req;
    for await (const _ of res.body) {
      // The prompt was prefilled before the client left: it ends mid-stream instead.
    }
  } catch {
    // The client hung up: that is the point.
  }
  outcomes.vanishedMidPrefill++;
}

async function vanishMidStream() {
  const controller = new AbortController();
  let chunks = 0;
  try {
    const res = await post({ model, prompt: ids(opts.context), max_tokens: 200, stream: true }, controller.signal);
    if (res.status !== 200) return unclean('mid-stream', `${res.status}`);
    for await (const _ of res.body) if (++chunks === 3) controller.abort();
  } catch {
    // Hung up after its first chunks.
  }
  if (chunks >= 3) outcomes.vanishedMidStream++;
  else unclean('mid-stream', `the stream ended after ${chunks} chunk(s) before the client left`);
}

const t0 = performance.now();
const jobs = [];
for (let i = 0; i < opts.requests; i++) {
  if (i < opts.streamed) jobs.push(vanishMidStream());
  else if (i % 5 === 0) jobs.push(overLong());
  else if (i % 5 === 1 || i % 5 === 2) jobs.push(badBody(i));
  else jobs.push(vanishMidPrefill());
}
await Promise.all(jobs);
log(`hostile: ${opts.requests} requests in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
// Aborts reach the engine between steps: wait until nothing runs.
for (let i = 0; i < 600 && (await engine.stats()).sequences > 0; i++) await new Promise((r) => setTimeout(r, 100));
const after = await engine.stats();
const last = await post({ model, prompt: ids(512), max_tokens: 8, temperature: 0 });
const lastBody = await last.json();
const leak = ['devicePages', 'hostPages', 'digestPages'].filter((p) => after[p].used !== after[p].cached);
const closed = await server.shutdown(0);
const report = {
  shape: opts.shape,
  backend: opts.backend,
  plan: opts.plan,
  requests: opts.requests,
  context: opts.context,
  seconds: +((performance.now() - t0) / 1000).toFixed(1),
  outcomes,
  afterLoad: { sequences: after.sequences, aborted: after.aborted, failed: after.failed, devicePages: after.devicePages, hostPages: after.hostPages },
  pagesLeaked: leak,
  stillServing: last.status === 200 && lastBody.usage?.completion_tokens === 8,
  poolsEmptyAfterClose: closed ? closed.devicePages.used === 0 && closed.hostPages.used === 0 && closed.digestPages.used === 0 : null,
};
const json = JSON.stringify(report, null, 2);
process.stdout.write(`${json}\n`);
if (opts.out) writeFileSync(opts.out, `${json}\n`);
const ok = outcomes.unclean.length === 0 && leak.length === 0 && report.stillServing && report.poolsEmptyAfterClose && after.failed === 0;
process.exit(ok ? 0 : 1);
