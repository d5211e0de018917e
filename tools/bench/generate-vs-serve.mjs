#!/usr/bin/env node
// The same batch of requests through `arkvale generate`'s path (generateBatch, the offline
// face of the engine) and through `arkvale serve`'s (a worker engine behind the OpenAI
// routes, the requests sent at once over HTTP on loopback): the greedy texts compared,
// and the mean decode step of each. JSON on stdout (and --out FILE); exit code 1 when a
// text differs.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { seededUniform } from '@arkvale/core';
import { LlamaEngine } from '@arkvale/model-llama';
import { describeBackend, generateBatch, loadBackend, WorkerEngine } from '@arkvale/engine';
import { createArkvaleServer } from '@arkvale/server';
import { buildPasskeyPrompt, readFiller } from '@arkvale/cli';
import { int, oneOf, parseCommand } from '../lib/args.mjs';

const { values: o } = parseCommand({
  usage: 'node tools/bench/generate-vs-serve.mjs [options]   (after pnpm build)',
  about: `One batch of passkey prompts on the bundled model through generate (generateBatch) and
through serve (WorkerEngine + the OpenAI routes, all requests at once): are the greedy
texts the same, and how long is a decode step on each path?`,
  options: {
    backend: { type: 'string', value: 'NAME', default: 'cpu', parse: oneOf('auto', 'cuda', 'cpu', 'reference'), help: 'backend of both paths' },
    requests: { type: 'string', value: 'N', default: '8', parse: int({ min: 1 }), help: 'requests in the batch' },
    length: { type: 'string', value: 'TOKENS', default: '1024', parse: int({ min: 64 }), help: 'prompt length (each prompt a different depth)' },
    tokens: { type: 'string', value: 'N', default: '48', parse: int({ min: 2 }), help: 'tokens generated per request (end of sequence ignored)' },
    rounds: {
      type: 'string',
      value: 'N',
      default: '5',
      parse: int({ min: 1 }),
      help: 'rounds of the batch on each path, alternating; the median decode step of each path is reported',
    },
    policy: { type: 'string', value: 'NAME', default: 'arkvale', parse: oneOf('full', 'streaming-llm', 'h2o', 'tova', 'quest', 'arkvale'), help: 'KV policy' },
    budget: { type: 'string', value: 'TOKENS', default: '256', parse: int({ min: 1 }), help: 'KV budget' },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON to FILE' },
  },
});

const root = resolve(import.meta.dirname, '../..');
const modelDir = join(root, 'models', 'tiny-retrieval');
const log = (t) => process.stderr.write(`${t}\n`);
const pageSize = 16;

const backend = await loadBackend({ backend: o.backend, onWarning: (t) => process.stderr.write(t) });
const model = await LlamaEngine.load(modelDir, backend);
const filler = readFiller(join(modelDir, 'filler.txt'));
const uniform = seededUniform(11);
const prompts = Array.from({ length: o.requests }, (_, i) => buildPasskeyPrompt(model.model.tokenizer, filler, o.length, i / o.requests, uniform).ids);

log(
  `${o.requests} prompts of ~${o.length} tokens, ${o.tokens} tokens each, ${o.policy} @ ${o.budget}, ${describeBackend(backend)}; ${o.rounds} rounds of generate, then serve`,
);
const generateRound = () => {
  const r = generateBatch(
    model,
    prompts.map((promptIds) => ({ promptIds, maxTokens: o.tokens, ignoreEos: true })),
    { policy: o.policy, budgetTokens: o.budget, pageSize },
  );
  const t = r.timings;
  return {
    texts: r.outputs.map((out) => out.text),
    decodeSteps: t.decodeSteps,
    rowsPerStep: t.sequenceSteps / t.decodeSteps,
    decodeStepMs: t.decodeMs / t.decodeSteps,
  };
};

// The serve path: a worker engine behind the OpenAI routes, as `arkvale serve` runs it.
const engine = await WorkerEngine.start({
  modelDir,
  backend: o.backend,
  pageSize,
  policy: o.policy,
  budgetTokens: o.budget,
  // Every prompt in one chunk, all in one step, as generate prefills them: the decode steps then carry the same rows on both paths.
  chunkTokens: Math.max(...prompts.map((p) => p.length)),
  stepTokens: prompts.reduce((n, p) => n + p.length, 0),
  onLog: (t) => process.stderr.write(t),
});
const server = createArkvaleServer({ engine });
const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
const serveRound = async () => {
  const before = await engine.stats();
  const texts = await Promise.all(
    prompts.map(async (prompt) => {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: engine.model.id, prompt, max_tokens: o.tokens, temperature: 0, ignore_eos: true }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`serve answered ${res.status}: ${JSON.stringify(body)}`);
      return body.choices[0].text;
    }),
  );
  const after = await engine.stats();
  const decodeSteps = after.decodeSteps - before.decodeSteps;
  const rows = after.decodeStepRows - before.decodeStepRows;
  return { texts, decodeSteps, rowsPerStep: rows / decodeSteps, decodeStepMs: (after.decodeStepMs - before.decodeStepMs) / decodeSteps };
};

// Rounds alternate between the paths, so that a slow spell of the machine falls on both; medians are reported.
const rounds = { generate: [], serve: [] };
for (let r = 0; r < o.rounds; r++) {
  rounds.generate.push(generateRound());
  rounds.serve.push(await serveRound());
}
await server.shutdown(0);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const generated = rounds.generate.at(-1).texts;
const served = rounds.serve.at(-1).texts;
const generateStepMs = median(rounds.generate.map((r) => r.decodeStepMs));
const serveStepMs = median(rounds.serve.map((r) => r.decodeStepMs));
const roundsDiffer = [...rounds.generate, ...rounds.serve].some((r) => r.texts.some((t, i) => t !== generated[i]));

const different = generated.flatMap((text, i) => (text === served[i] ? [] : [{ request: i, generate: text, serve: served[i] }]));
const report = {
  backend: describeBackend(backend),
  requests: o.requests,
  promptTokens: prompts.map((p) => p.length),
  tokens: o.tokens,
  rounds: o.rounds,
  plan: `${o.policy} @ ${o.budget}, pages of ${pageSize}`,
  sameTexts: different.length === 0 && !roundsDiffer,
  different,
  // Per round: decode-only steps and their mean time (the whole engine step: scheduling, forward pass, sampling).
  generate: { decodeStepMs: generateStepMs, rounds: rounds.generate.map(({ texts: _t, ...r }) => r) },
  serve: { decodeStepMs: serveStepMs, rounds: rounds.serve.map(({ texts: _t, ...r }) => r) },
  serveOverGenerate: serveStepMs / generateStepMs,
};
const json = JSON.stringify(report, null, 2);
process.stdout.write(`${json}\n`);
if (o.out) writeFileSync(o.out, `${json}\n`);
log(
  `texts ${report.sameTexts ? 'identical' : 'differ'}; median decode step ${generateStepMs.toFixed(2)} ms (generate) vs ${serveStepMs.toFixed(2)} ms (serve): ${report.serveOverGenerate.toFixed(3)}x`,
);
process.exitCode = report.sameTexts ? 0 : 1;
