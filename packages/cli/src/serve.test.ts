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
  it('listens, answers a completion with the model (its steps overlapped: --overlap-steps on), and stops cleanly on SIGTERM with every page free', async () => {
    let err = '';
    const io: CliIo = { out: () => {}, err: (t) => (err += t), readStdin: async () => null, interactive: false };
    const exit = runCli(['serve', '-m', modelDir, '--port', '0', '--backend', 'cpu', '--policy', 'full', '--device-pages', '256', '--overlap-steps', 'on'], io);
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
    // Off by default on the CPU, on here: decode steps took their tokens from the step before.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(Number(/^arkvale:overlapped_steps_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    process.emit('SIGTERM');
    expect(await exit).toBe(0);
    expect(err).toMatch(/stopped; 1 requests finished, 0 aborted; KV pages in use: 0 device, 0 host/);
  }, 60_000);

  it('refuses a bad backend or dtype before listening, and a missing model after, with exit code 2', async () => {
    const bad = await cli(['serve', '--backend', 'gpu', '--port', '0']);
    expect([bad.code, bad.err]).toEqual([2, expect.stringMatching(/unknown backend "gpu"; expected one of: auto, cuda, cpu, reference/)]);
    expect(bad.err).not.toMatch(/listening/);
    expect((await cli(['serve', '--dtype', 'f64', '--port', '0'])).err).toMatch(/unknown dtype "f64"/);
    expect((await cli(['serve', '--overlap-steps', 'maybe', '--port', '0'])).err).toMatch(/overlap steps must be "on" or "off", got "maybe"/);
    const missing = await cli(['serve', '-m', '/nonexistent/model', '--port', '0']);
    expect([missing.code, missing.err]).toEqual([2, expect.stringMatching(/\/nonexistent\/model/)]);
  });

  it('serves random weights at a model shape (--shape): prompts as token ids; text prompts and chat refused with the reason; --no-prefix-cache', async () => {
    let err = '';
    const io: CliIo = { out: () => {}, err: (t) => (err += t), readStdin: async () => null, interactive: false };
    const exit = runCli(['serve', '--shape', 'tiny-retrieval', '--port', '0', '--backend', 'cpu', '--device-pages', '256', '--no-prefix-cache'], io);
    await until(() => err.includes('arkvale serve: ready'), 20_000, 'the server').catch((e) => {
      throw new Error(`${(e as Error).message}: ${err}`);
    });
    expect(err).toMatch(/loading random weights at the tiny-retrieval shape/);
    const base = /listening on (http:\/\/\S+) /.exec(err)![1];
    const post = (path: string, body: object) =>
      fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ids = await post('/v1/completions', { model: 'tiny-retrieval', prompt: [1, 5, 9, 300, 12], max_tokens: 6, temperature: 0, ignore_eos: true });
    expect(ids.status).toBe(200);
    expect(((await ids.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(6);
    // --no-prefix-cache: the same 40-token prompt twice is prefilled whole twice.
    const long = { model: 'tiny-retrieval', prompt: Array.from({ length: 40 }, (_, i) => 3 + i), max_tokens: 2 };
    for (let i = 0; i < 2; i++) {
      const usage = ((await (await post('/v1/completions', long)).json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage;
      expect(usage.prompt_tokens_details.cached_tokens).toBe(0);
    }
    const text = await post('/v1/completions', { model: 'tiny-retrieval', prompt: 'The old farmer', max_tokens: 4 });
    expect([text.status, ((await text.json()) as { error: { message: string; param: string } }).error]).toEqual([
      400,
      expect.objectContaining({ param: 'prompt', message: expect.stringMatching(/no tokenizer .*send the prompt as an array of token ids/) }),
    ]);
    const stop = await post('/v1/completions', { model: 'tiny-retrieval', prompt: [1, 5, 9], max_tokens: 4, stop: ['.'] });
    expect([stop.status, ((await stop.json()) as { error: { param: string; message: string } }).error]).toEqual([
      400,
      expect.objectContaining({ param: 'stop', message: expect.stringMatching(/no tokenizer .*cannot match stop strings/) }),
    ]);
    const chat = await post('/v1/chat/completions', { model: 'tiny-retrieval', messages: [{ role: 'user', content: 'hi' }] });
    expect([chat.status, ((await chat.json()) as { error: { message: string } }).error.message]).toEqual([
      400,
      expect.stringMatching(/no tokenizer or chat template/),
    ]);
    process.emit('SIGTERM');
    expect(await exit).toBe(0);
    const both = await cli(['serve', '--shape', 'tiny-retrieval', '-m', modelDir, '--port', '0']);
    expect([both.code, both.err]).toEqual([2, expect.stringMatching(/give --model or --shape, not both/)]);
    const unknown = await cli(['serve', '--shape', 'llama9-1t', '--port', '0']);
    expect([unknown.code, unknown.err]).toEqual([2, expect.stringMatching(/unknown model shape "llama9-1t"/)]);
  }, 60_000);
});
