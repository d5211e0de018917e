import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seededUniform } from '@arkvale/core';
import { generateBatch, loadBackend } from '@arkvale/engine';
import { LlamaEngine } from '@arkvale/model-llama';
import type { CliIo } from './io.js';
import { buildPasskeyPrompt, readFiller } from './passkey/prompt.js';
import { runCli } from './program.js';
import { modelDir } from './test-support.js';

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('one engine under generate and serve', () => {
  it('gives a batch of requests the same greedy texts through generate (generateBatch) and through arkvale serve', async () => {
    const model = await LlamaEngine.load(modelDir, await loadBackend({ backend: 'cpu', onWarning: () => {} }));
    const filler = readFiller(join(modelDir, 'filler.txt'));
    const uniform = seededUniform(5);
    // Prompts over the budget (ArkVale evicts and recalls), each hiding its key at another depth.
    const prompts = [0, 0.3, 0.6, 0.9].map((depth) => buildPasskeyPrompt(model.model.tokenizer, filler, 200, depth, uniform).ids);
    const plan = { policy: 'arkvale' as const, budgetTokens: 64, pageSize: 16 };
    const offline = generateBatch(
      model,
      prompts.map((promptIds) => ({ promptIds, maxTokens: 12, ignoreEos: true })),
      plan,
    );

    let err = '';
    const io: CliIo = { out: () => {}, err: (t) => (err += t), readStdin: async () => null, interactive: false };
    const exit = runCli(['serve', '-m', modelDir, '--port', '0', '--backend', 'cpu', '--policy', 'arkvale', '--budget', '64', '--page-size', '16'], io);
    await until(() => err.includes('arkvale serve: ready'), 20_000, 'the server').catch((e) => {
      throw new Error(`${(e as Error).message}: ${err}`);
    });
    const base = /listening on (http:\/\/\S+) /.exec(err)![1];
    // All at once: the server batches them as it schedules them (chunked prefill, continuous batching).
    const served = await Promise.all(
      prompts.map(async (prompt) => {
        const res = await fetch(`${base}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'tiny-retrieval', prompt, max_tokens: 12, temperature: 0, ignore_eos: true }),
        });
        return ((await res.json()) as { choices: { text: string }[] }).choices[0].text;
      }),
    );
    process.emit('SIGTERM');
    expect(await exit).toBe(0);
    expect(served).toEqual(offline.outputs.map((o) => o.text));
    expect(offline.outputs.every((o) => o.tokenIds.length === 12)).toBe(true);
  }, 120_000);
});
