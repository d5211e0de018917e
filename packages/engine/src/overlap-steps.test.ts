import { CpuBackend } from '@arkvale/cpu-backend';
import type { Tensor } from '@arkvale/core';
import { LlamaEngine } from '@arkvale/model-llama';
import { describe, expect, it } from 'vitest';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { generateBatch, type GenerationRequest } from './generate-batch.js';
import { LocalEngine } from './local-engine.js';
import type { EngineRequest } from './types.js';
import { MODEL_DIR } from './test-support/model.js';

/**
 * Overlapped decode steps (EngineConfig.overlapSteps; TokenFeed) change when tokens
 * reach the host, never which: every request must end with the tokens, text and finish
 * reason it has with steps run one by one, whether it ends by length, end of sequence,
 * a stop string or an abort, and whatever runs beside it (sampled rows, a suffix,
 * prompts admitted mid-run). The CPU backend computes each op when called, so the
 * order of work is what a GPU's stream would run.
 */

/** The CPU backend counting tokens read at once (readSync of an i32 vector: drawRows' tokens) and tokens kept on the device (copyInto). */
class CountingBackend extends CpuBackend {
  reads = 0;
  held = 0;
  override readSync(t: Tensor): Float32Array | Int32Array {
    if (t.dtype === 'i32' && t.shape.length === 1) this.reads++;
    return super.readSync(t);
  }
  override copyInto(dst: Tensor, src: Tensor): void {
    this.held++;
    super.copyInto(dst, src);
  }
}

const [farm, passkey] = golden.cases;

function generate(overlapSteps: boolean, requests: readonly GenerationRequest[]) {
  return async () => {
    const backend = new CountingBackend();
    const model = await LlamaEngine.load(MODEL_DIR, backend);
    const r = generateBatch(model, requests, { policy: 'arkvale', pageSize: 16, budgetTokens: 64 }, { overlapSteps });
    return { outputs: r.outputs.map((o) => ({ tokenIds: o.tokenIds, text: o.text, finishReason: o.finishReason })), backend, timings: r.timings };
  };
}

describe('overlapped decode steps', () => {
  it('end every request where steps run one by one do: by length, end of sequence and stop string, beside sampled and suffix rows', async () => {
    const requests: GenerationRequest[] = [
      { promptIds: farm.ids, maxTokens: 24, ignoreEos: true },
      // The passkey's answer ends with </s> after 7 tokens.
      { promptIds: passkey.ids, maxTokens: 12 },
      { promptIds: farm.ids, maxTokens: 20, stop: ['clever farmer'] },
      { promptIds: farm.ids.slice(0, 5), maxTokens: 9, temperature: 1, seed: 3 },
      { promptIds: farm.ids.slice(0, 3), suffixIds: farm.ids.slice(3), maxTokens: 6, ignoreEos: true },
    ];
    const on = await generate(true, requests)();
    const off = await generate(false, requests)();
    expect(on.outputs).toEqual(off.outputs);
    expect(on.outputs.map((o) => o.finishReason)).toEqual(['length', 'eos', 'stop', 'length', 'length']);
    expect(on.outputs[1].tokenIds).toEqual(passkey.greedy.slice(0, passkey.greedy.indexOf(2)));
    // Steps ran ahead once the suffix was fed, never before.
    expect(off.backend.held).toBe(0);
    expect(on.backend.held).toBeGreaterThan(5);
    expect(on.backend.reads).toBeLessThan(off.backend.reads - 5);
  }, 60_000);

  it('issue the next step before the host reads the tokens it feeds', async () => {
    const { backend, outputs, timings } = await generate(true, [{ promptIds: farm.ids, maxTokens: 12, ignoreEos: true }])();
    expect(outputs[0].tokenIds).toEqual(farm.greedy.slice(0, 12));
    // The prefill's token is read at once. Every decode step then holds its token on the device, each after the first
    // fed from the one before, except the last: its token ends the request, so it is read at once too.
    expect(backend.held).toBe(timings.decodeSteps - 1);
    expect(backend.reads).toBe(2);
  }, 30_000);

  it('run sampled rows ahead too, each drawing from its own seeded stream as it would one by one', async () => {
    const requests: GenerationRequest[] = [
      { promptIds: farm.ids, maxTokens: 16, ignoreEos: true, temperature: 0.8, topK: 20, seed: 7 },
      { promptIds: farm.ids.slice(0, 4), maxTokens: 14, ignoreEos: true, temperature: 1.2, topP: 0.9, seed: 8 },
      { promptIds: farm.ids, maxTokens: 12, ignoreEos: true },
    ];
    const on = await generate(true, requests)();
    const off = await generate(false, requests)();
    expect(on.outputs).toEqual(off.outputs);
    // A seed's draws differ from the greedy tokens (the rows really sampled).
    expect(on.outputs[0].tokenIds).not.toEqual(farm.greedy.slice(0, 16));
    expect(off.backend.held).toBe(0);
    // Steps 2-16 (the prefill gave token 1). Those giving a request its last token read them at once: 12, 14 and 16.
    expect(on.timings.decodeSteps).toBe(15);
    expect(on.backend.held).toBe(12);
  }, 30_000);

  it('drop the row a request computed past its end', async () => {
    // Greedy rows alone: the passkey request ends by </s> while its next step is already issued.
    const requests: GenerationRequest[] = [
      { promptIds: passkey.ids, maxTokens: 12 },
      { promptIds: farm.ids, maxTokens: 16, ignoreEos: true },
    ];
    const on = await generate(true, requests)();
    const off = await generate(false, requests)();
    expect(on.outputs).toEqual(off.outputs);
    expect(on.outputs[0].finishReason).toBe('eos');
    // Every decode step after the first fed from the one before, the step after the passkey's end too (its row dropped out).
    expect(on.timings.overlappedSteps).toBe(on.timings.decodeSteps - 1);
    expect(off.timings.overlappedSteps).toBe(0);
  }, 60_000);
});

describe('overlapped decode steps in a serving engine', () => {
  async function serve(overlapSteps: boolean) {
    const backend = new CountingBackend();
    const engine = await LocalEngine.load({ modelDir: MODEL_DIR, backend, pageSize: 8, budgetTokens: 32, overlapSteps });
    const collect = async (req: EngineRequest, stopAfter?: number) => {
      let text = '';
      let tokens = 0;
      let finish = '';
      for await (const ev of engine.submit(req)) {
        text += ev.text;
        if (ev.type === 'token') tokens++;
        if (ev.type === 'done') finish = ev.finishReason;
        if (stopAfter !== undefined && tokens >= stopAfter) break;
      }
      return { text, tokens, finish };
    };
    try {
      const first = collect({ prompt: 'The old farmer painted the barn and then the', maxTokens: 30, temperature: 0, ignoreEos: true });
      // Arrives while the first decodes, and is abandoned after 5 tokens (an abort while its steps run ahead).
      await new Promise((r) => setTimeout(r, 5));
      const second = collect({ prompt: 'Once upon a time in a small village there lived a', maxTokens: 30, temperature: 0, ignoreEos: true }, 5);
      const third = collect({ prompt: 'The pass key is 4242. Remember it. The pass key is', maxTokens: 8, temperature: 0 });
      const results = await Promise.all([first, second, third]);
      const stats = await engine.stats();
      return { results, stats, held: backend.held };
    } finally {
      await engine.close();
    }
  }

  it('streams the same text with prompts admitted mid-run and a request abandoned, and leaves no sequence behind', async () => {
    const on = await serve(true);
    const off = await serve(false);
    expect(on.results).toEqual(off.results);
    expect(on.results[1].tokens).toBe(5);
    expect(on.held).toBeGreaterThan(0);
    expect(off.held).toBe(0);
    // The engine counts the steps that fed from the device (what /metrics reports).
    expect(on.stats.overlappedSteps).toBeGreaterThan(0);
    expect(off.stats.overlappedSteps).toBe(0);
    for (const s of [on.stats, off.stats]) expect(s.running).toBe(0);
  }, 60_000);
});

describe('overlapped decode steps when a sequence is parked', () => {
  /** The CPU backend failing the narrowing of held tokens (an i32 gather) once `failNarrowing` is set. */
  class NarrowingBackend extends CpuBackend {
    failNarrowing = false;
    narrowings = 0;
    override gatherRows(t: Tensor, indices: Tensor): Tensor {
      if (t.dtype === 'i32' && t.shape.length === 1) {
        this.narrowings++;
        if (this.failNarrowing) throw new Error('the narrowing failed');
      }
      return super.gatherRows(t, indices);
    }
  }
  const requests: EngineRequest[] = [
    { prompt: 'The old farmer painted the barn and then the', maxTokens: 90, temperature: 0, ignoreEos: true, kvPolicy: 'full' },
    { prompt: 'Once upon a time in a small village there lived a', maxTokens: 90, temperature: 0, ignoreEos: true, kvPolicy: 'full' },
  ];
  async function run(overlapSteps: boolean, failNarrowing = false) {
    const backend = new NarrowingBackend();
    backend.failNarrowing = failNarrowing;
    // A device pool too small for both to run to the end side by side: one is parked, and the other's steps go on without it.
    const engine = await LocalEngine.load({ modelDir: MODEL_DIR, backend, pageSize: 8, devicePages: 80, hostPages: 400, budgetTokens: 32, overlapSteps });
    try {
      const texts = await Promise.all(
        requests.map(async (req) => {
          let text = '';
          try {
            for await (const ev of engine.submit(req)) text += ev.text;
          } catch (e) {
            return { text, error: (e as Error).message };
          }
          return { text };
        }),
      );
      return { texts, stats: await engine.stats(), narrowings: backend.narrowings };
    } finally {
      await engine.close();
    }
  }

  it('feed the running sequence from the device and give both the text of steps one by one', async () => {
    const on = await run(true);
    const off = await run(false);
    expect(on.stats.parks).toBeGreaterThan(0);
    expect(on.narrowings).toBeGreaterThan(0);
    expect(on.texts).toEqual(off.texts);
  }, 60_000);

  it('fail the parked request too when the step fed without it fails, rather than lose its held token', async () => {
    const { texts, stats } = await run(true, true);
    expect(stats.failed).toBe(2);
    expect(texts.every((t) => t.error !== undefined)).toBe(true);
  }, 60_000);
});
