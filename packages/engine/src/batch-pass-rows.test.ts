import { describe, expect, it } from 'vitest';
import { BATCH_PASS_ROWS, BatchRun } from './generate-batch.js';
import { idleCudaModel } from './test-support/idle-cuda.js';

/**
 * An offline batch of long prompts at a model shape: four 128k prompts in one pass
 * would make [524288, 4096] activations at the Llama-3-8B shape, 2^31 elements, past a
 * kernel's 32-bit sizes (a residual add refused them). By default a pass holds
 * BATCH_PASS_ROWS rows, or one prompt where longer. The CUDA backend runs over an addon
 * that does nothing, so the host's side of each pass (sizes, launches) is what is checked.
 */
describe('an offline batch of long prompts', () => {
  it('prefills 4 x 131,072 tokens at the Llama-3-8B shape a prompt a pass', () => {
    const context = 131_072;
    const { config, cache, model, dispose } = idleCudaModel({
      shape: 'llama3-8b',
      policy: 'arkvale',
      budgetTokens: 4096,
      pageSize: 32,
      tokens: context + 4,
      batch: 4,
    });
    const prompt = Array.from({ length: context }, (_, i) => i % config.vocabSize);
    const run = new BatchRun(
      model,
      cache,
      [0, 1, 2, 3].map(() => ({ promptIds: prompt, maxTokens: 2, ignoreEos: true })),
    );
    try {
      const reports = [];
      while (!run.done) reports.push(run.step());
      expect(BATCH_PASS_ROWS).toBeLessThan(context);
      expect(reports.slice(0, 4).map((r) => r.prefillTokens)).toEqual([context, context, context, context]);
      // Each prompt's second token is decoded beside the next prompt's prefill; the last one's alone.
      expect(reports.map((r) => r.decodeRows)).toEqual([0, 1, 1, 1, 1]);
      expect(run.tokenIds.map((t) => t.length)).toEqual([2, 2, 2, 2]);
    } finally {
      run.close();
      dispose();
    }
  }, 60_000);
});
