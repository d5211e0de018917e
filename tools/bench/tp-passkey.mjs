#!/usr/bin/env node
// The two-phase passkey protocol under tensor parallelism, on the CPU with in-process
// ranks (TensorParallelLlama over one CPU backend): ArkVale with each rank selecting
// pages for its own KV heads (the design built, docs/DESIGN.md), against one rank.
// With layer-wide selection, the other design (every rank all-reduces its per-page
// scores and selects the same pages) selects exactly what one rank selects, so its
// accuracy is the size-1 row.
//
//   node tools/bench/tp-passkey.mjs [--sizes 1,2,4] [--lengths 4096] [--budgets 256,512] [--depths 20]
//
// JSON on stdout: accuracy per (size, length, budget), and each prompt's answer.
import { join } from 'node:path';
import { answerMatches, buildPasskeyPrompt, depths as depthList, readFiller } from '@arkvale/cli';
import { InProcessGroup, seededUniform } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { LlamaEngine, TensorParallelLlama } from '@arkvale/model-llama';
import { int, list, parseCommand } from '../lib/args.mjs';

const { values: opts } = parseCommand({
  usage: 'node tools/bench/tp-passkey.mjs [options]',
  about: `The two-phase passkey protocol with ArkVale under tensor parallelism (CPU, in-process
ranks, each selecting for its own KV heads), against one rank. JSON on stdout.`,
  options: {
    model: { type: 'string', value: 'DIR', default: 'models/tiny-retrieval', help: 'a trained model folder with filler.txt' },
    sizes: { type: 'string', value: 'LIST', default: '1,2,4', parse: list(int({ min: 1 })), help: 'tensor-parallel sizes' },
    lengths: { type: 'string', value: 'LIST', default: '4096', parse: list(int({ min: 64 })), help: 'prompt lengths in tokens' },
    budgets: { type: 'string', value: 'LIST', default: '256,512', parse: list(int({ min: 1 })), help: 'KV budgets in tokens' },
    depths: { type: 'string', value: 'N', default: '20', parse: int({ min: 1 }), help: 'depths per length' },
    'page-size': { type: 'string', value: 'N', default: '16', parse: int({ min: 1 }), help: 'tokens per KV page' },
    'max-tokens': { type: 'string', value: 'N', default: '8', parse: int({ min: 1 }), help: 'answer tokens' },
  },
});

const backend = new CpuBackend();
const engine = await LlamaEngine.load(opts.model, backend);
const { tokenizer, config } = engine.model;
const filler = readFiller(join(opts.model, 'filler.txt'));
const argmax = (xs) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/** Greedy answer of one prompt: the context prefilled, the question fed as decode steps, then `max-tokens` generated. */
function answer(model, plan, prompt) {
  const caches = model.createCaches(plan, prompt.ids.length + opts['max-tokens'] + 1);
  const id = model.admit(caches, prompt.contextIds.length);
  const next = (logits) => {
    const token = argmax(backend.readSync(logits));
    backend.dispose(logits);
    return token;
  };
  let token = next(model.prefill(caches, [{ id, tokens: prompt.contextIds }]));
  for (const q of prompt.questionIds) token = next(model.decode(caches, [id], [q]));
  const out = [];
  for (let i = 0; i < opts['max-tokens']; i++) {
    out.push(token);
    token = next(model.decode(caches, [id], [token]));
  }
  model.free(caches, id);
  return tokenizer.decode(out);
}

const rows = [];
for (const size of opts.sizes) {
  const model = TensorParallelLlama.fromWeights(config, engine.forward.weights, backend, new InProcessGroup(Array(size).fill(backend)));
  for (const length of opts.lengths) {
    for (const budget of opts.budgets) {
      const uniform = seededUniform(length); // the prompts of `arkvale eval passkey --seed 0`
      const prompts = depthList(opts.depths).map((depth) => buildPasskeyPrompt(tokenizer, filler, length, depth, uniform));
      const plan = { policy: 'arkvale', budgetTokens: budget, pageSize: opts['page-size'] };
      const started = performance.now();
      const answers = prompts.map((p) => answer(model, plan, p));
      const correct = answers.filter((a, i) => answerMatches(a, prompts[i].passkey)).length;
      rows.push({ size, length, budget, accuracy: correct / prompts.length, answers, seconds: (performance.now() - started) / 1000 });
      process.stderr.write(`size ${size}, ${length} tokens, arkvale @ ${budget}: ${correct}/${prompts.length}\n`);
    }
  }
  model.dispose();
}
process.stdout.write(`${JSON.stringify({ model: opts.model, pageSize: opts['page-size'], protocol: 'two-phase', rows }, null, 1)}\n`);
