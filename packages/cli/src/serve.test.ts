import { describe, expect, it } from 'vitest';
import type { CliIo } from './io.js';
import { runCli } from './program.js';
import { cli, modelDir } from './test-support.js';

/** Resolves when `check` passes, polling every 20 ms, or rejects after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('arkvale serve', () => {
  it('listens, answers a completion with the model, and stops cleanly on SIGTERM with every page free', async () => {
    let err = '';
    const io: CliIo = { out: () => {}, err: (t) => (err += t), readStdin: async () => null, interactive: false };
    const exit = runCli(['serve', '-m', modelDir, '--port', '0', '--backend', 'cpu', '--policy', 'full', '--device-pages', '256'], io);
    await until(() => /listening on (http:\/\/\S+)/.test(err), 10_000, 'the server to listen');
    const base = /listening on (http:\/\/\S+) /.exec(err)![1];
    await until(() => err.includes('arkvale serve: ready'), 20_000, 'the model to load').catch((e) => {
      throw new Error(`${(e as Error).message}: ${err}`);
    });
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-retrieval', prompt: 'The old farmer painted', max_tokens: 8, temperature: 0 }),
    });
    const body = (await res.json()) as { choices: { text: string }[] };
    // golden.json's greedy continuation of this prompt.
    expect(body.choices[0].text).toBe(' our lake. The clever farmer described their');
    process.emit('SIGTERM');
    expect(await exit).toBe(0);
    expect(err).toMatch(/stopped; 1 requests finished, 0 aborted; KV pages in use: 0 device, 0 host/);
  }, 60_000);

  it('refuses a bad backend or dtype before listening, and a missing model after, with exit code 2', async () => {
    const bad = await cli(['serve', '--backend', 'gpu', '--port', '0']);
    expect([bad.code, bad.err]).toEqual([2, expect.stringMatching(/unknown backend "gpu"; expected one of: auto, cuda, cpu, reference/)]);
    expect(bad.err).not.toMatch(/listening/);
    expect((await cli(['serve', '--dtype', 'f64', '--port', '0'])).err).toMatch(/unknown dtype "f64"/);
    const missing = await cli(['serve', '-m', '/nonexistent/model', '--port', '0']);
    expect([missing.code, missing.err]).toEqual([2, expect.stringMatching(/\/nonexistent\/model/)]);
  });
});
