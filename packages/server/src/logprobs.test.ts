import { ReferenceBackend } from '@arkvale/core';
import { LlamaEngine } from '@arkvale/model-llama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_DIR, startServer, type TestServer } from './test-support/fixtures.js';

/*
 * Log-probabilities through the official client, against the reference backend: the
 * bundled model's logits for every position of the same tokens (one pass, Full), their
 * log-softmax taken here in f64.
 */

/** log p(tokens[t + 1] | tokens[..t]) for every t, and each position's log-softmax, on the reference backend. */
async function referenceLogprobs(tokens: readonly number[]) {
  const model = await LlamaEngine.load(MODEL_DIR, new ReferenceBackend());
  const cache = model.createCache({ policy: 'full', pageSize: 16 }, tokens.length + 16);
  const id = cache.admit(tokens.length);
  const logits = model.forward.forwardRows({
    segments: [{ tokens, positions: tokens.map((_, i) => i), attend: (l, q, k, v) => cache.prefillLayer(id, l, q, k, v, model.forward.scale) }],
    logitRows: tokens.map((_, i) => i),
  });
  const data = model.backend.readSync(logits);
  const vocab = data.length / tokens.length;
  const rows = tokens.map((_, t) => {
    const row = Array.from(data.subarray(t * vocab, (t + 1) * vocab));
    const max = Math.max(...row);
    const norm = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    return row.map((x) => x - norm);
  });
  cache.free(id);
  return { next: tokens.slice(1).map((tok, t) => rows[t][tok]), rows, tokenizer: model.model.tokenizer };
}

describe('log-probabilities (OpenAI completions and chat)', () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startServer({ policy: 'full' });
    client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 20_000 });
  });
  afterAll(() => t?.stop());

  it("answers lm-evaluation-harness's log-likelihood request (echo, logprobs, max_tokens 0 and 1) with the reference's total", async () => {
    const { tokenizer } = await referenceLogprobs([1, 2]);
    const context = tokenizer.encode('The pass key is 4242. Remember it. The pass key is');
    const continuation = tokenizer.encode(' 4242', { addSpecialTokens: false });
    const tokens = [...context, ...continuation];
    const reference = await referenceLogprobs(tokens);
    const expected = reference.next.slice(context.length - 1).reduce((a, b) => a + b, 0);
    for (const maxTokens of [0, 1]) {
      // A batch of two prompts, as the harness sends them: the scored one and the context alone.
      const res = await client.completions.create({
        model: 'tiny-retrieval',
        prompt: [tokens, context],
        echo: true,
        logprobs: 1,
        max_tokens: maxTokens,
        temperature: 0,
      } as never);
      const choice = res.choices.find((c) => c.index === 0)!;
      const lp = choice.logprobs!;
      expect(lp.token_logprobs).toHaveLength(tokens.length + maxTokens);
      expect(lp.token_logprobs![0]).toBeNull();
      // The harness's slice: the continuation's entries (without the generated one).
      const scored = (lp.token_logprobs as number[]).slice(context.length, tokens.length);
      expect(Math.abs(scored.reduce((a, b) => a + b, 0) - expected)).toBeLessThan(1e-3);
      // Each position's top entry is the reference's most likely token there.
      lp.top_logprobs!.slice(1, tokens.length).forEach((top, i) => {
        const best = Math.max(...reference.rows[i]);
        expect(Math.abs(Math.max(...Object.values(top as Record<string, number>)) - best)).toBeLessThan(1e-3);
      });
      expect(res.choices.map((c) => c.index).sort()).toEqual([0, 1]);
      expect(res.usage).toMatchObject({ prompt_tokens: tokens.length + context.length, completion_tokens: maxTokens * 2 });
    }
  });

  it('gives each generated token its log-probability and its top alternatives, streamed or not', async () => {
    const body = { model: 'tiny-retrieval', prompt: 'The old farmer painted', max_tokens: 5, temperature: 0, logprobs: 3 };
    const whole = await client.completions.create(body);
    const lp = whole.choices[0].logprobs!;
    const { tokenizer } = await referenceLogprobs([1, 2]);
    const prompt = tokenizer.encode('The old farmer painted');
    const ids = (await client.completions.create({ ...body, return_token_ids: true } as never)).choices[0] as unknown as { token_ids: number[] };
    const reference = await referenceLogprobs([...prompt, ...ids.token_ids]);
    ids.token_ids.forEach((_, i) => {
      expect(Math.abs(lp.token_logprobs![i] - reference.next[prompt.length - 1 + i])).toBeLessThan(1e-3);
      const top = Object.values(lp.top_logprobs![i] as Record<string, number>);
      expect(top).toHaveLength(3);
      // Greedy: the chosen token is the most likely.
      expect(Math.abs(Math.max(...top) - lp.token_logprobs![i])).toBeLessThan(1e-9);
    });
    expect(lp.tokens!.join('')).toBe(whole.choices[0].text);
    expect(lp.text_offset).toEqual(lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length));
    // Streamed: the same entries, one chunk per token.
    const stream = await client.completions.create({ ...body, stream: true });
    const streamed: number[] = [];
    for await (const chunk of stream) streamed.push(...((chunk.choices[0]?.logprobs?.token_logprobs ?? []) as number[]));
    expect(streamed).toEqual(lp.token_logprobs);
  });

  it('echoes the prompt first in a stream, with its log-probabilities', async () => {
    const stream = await client.completions.create({
      model: 'tiny-retrieval',
      prompt: 'The old farmer painted',
      max_tokens: 2,
      temperature: 0,
      logprobs: 0,
      echo: true,
      stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk.choices[0]);
    expect(chunks[0].text).toBe('The old farmer painted');
    expect(chunks[0].logprobs!.token_logprobs![0]).toBeNull();
    const whole = await client.completions.create({
      model: 'tiny-retrieval',
      prompt: 'The old farmer painted',
      max_tokens: 2,
      temperature: 0,
      logprobs: 0,
      echo: true,
    });
    expect(chunks.map((c) => c.text).join('')).toBe(whole.choices[0].text);
    expect(chunks.flatMap((c) => c.logprobs?.token_logprobs ?? [])).toEqual(whole.choices[0].logprobs!.token_logprobs);
  });

  it('chat: logprobs with top_logprobs, in OpenAI chat shape', async () => {
    const res = await client.chat.completions.create({
      model: 'tiny-retrieval',
      messages: [{ role: 'user', content: 'The pass key is 4242. What is the pass key?' }],
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = res.choices[0].logprobs!.content!;
    expect(content).toHaveLength(res.usage!.completion_tokens);
    for (const entry of content) {
      expect(entry.top_logprobs).toHaveLength(2);
      expect(entry.top_logprobs[0].logprob).toBeGreaterThanOrEqual(entry.top_logprobs[1].logprob);
      expect(Math.abs(entry.top_logprobs[0].logprob - entry.logprob)).toBeLessThan(1e-9);
      expect(entry.bytes).toEqual([...Buffer.from(entry.token, 'utf8')]);
    }
    expect(content.map((e) => e.token).join('')).toBe(res.choices[0].message.content);
    const plain = await client.chat.completions.create({ model: 'tiny-retrieval', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(plain.choices[0].logprobs).toBeNull();
  });

  it('refuses best_of with what to do instead', async () => {
    await expect(client.completions.create({ model: 'tiny-retrieval', prompt: 'x', best_of: 3 })).rejects.toMatchObject({
      status: 400,
      param: 'best_of',
      message: expect.stringMatching(/does not rank candidates .* ask for n choices/),
    });
  });
});
