import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@arkvale/cpu-backend';
import { LlamaEngine, seededUniform } from '@arkvale/model-llama';
import { modelDir } from '../test-support.js';
import { answerMatches, buildPasskeyPrompt, readFiller, type PasskeyPrompt } from './prompt.js';

const LENGTH = 1024;
const BUDGET = 256;
const PAGE = 16;

interface Phases {
  /** Per layer: whether the cache holds the needle (its page, or its token) at the end of the context's prefill. */
  readonly afterPrefill: boolean[];
  /** The same when the answer is generated, after the question was fed. */
  readonly atAnswer: boolean[];
  readonly answer: string;
  readonly recalls: number;
}

/** Position of the pass key's first token in the context. */
function needlePosition(engine: LlamaEngine, p: PasskeyPrompt): number {
  const key = engine.model.tokenizer.encode(` ${p.passkey}`, { addSpecialTokens: false });
  const at = p.contextIds.findIndex((_, t) => key.every((k, j) => p.contextIds[t + j] === k));
  expect(at).toBeGreaterThan(0);
  return at;
}

/** The two-phase protocol by hand, looking at every layer between the phases. */
function runPhases(engine: LlamaEngine, p: PasskeyPrompt, policy: 'arkvale' | 'h2o'): Phases {
  const needle = needlePosition(engine, p);
  const cache = engine.createCache({ policy, budgetTokens: BUDGET, pageSize: PAGE }, LENGTH + 16);
  const id = cache.admit(p.contextIds.length);
  const holds = () =>
    Array.from({ length: engine.model.config.numLayers }, (_, l) => {
      const v = cache.view(id, l);
      return v.kind === 'page' ? v.resident.includes(Math.floor(needle / PAGE)) : v.positions.includes(needle);
    });
  const b = engine.backend;
  let logits = engine.forward.prefill(cache, [{ id, tokens: p.contextIds }]);
  const afterPrefill = holds();
  for (const t of p.questionIds) logits = engine.forward.decode(cache, [id], [t]);
  const atAnswer = holds();
  const answer: number[] = [];
  for (let i = 0; i < 7; i++) {
    answer.push(b.readSync(b.argmax(logits))[0]);
    logits = engine.forward.decode(cache, [id], [answer[i]]);
  }
  const { recalls } = cache.stats();
  cache.free(id);
  return { afterPrefill, atAnswer, answer: engine.model.tokenizer.decode(answer), recalls };
}

describe('the two-phase passkey protocol', () => {
  it('ArkVale recalls the needle page while the question is fed; H2O at the same budget never gets it back', async () => {
    const engine = await LlamaEngine.load(modelDir, new CpuBackend());
    const filler = readFiller(join(modelDir, 'filler.txt'));
    const uniform = seededUniform(7);
    const prompts = Array.from({ length: 10 }, (_, i) => buildPasskeyPrompt(engine.model.tokenizer, filler, LENGTH, i / 10, uniform));
    // Every layer of the bundled model is budgeted under the default options (0 full layers of 4).
    expect(engine.createCache({ policy: 'arkvale', budgetTokens: BUDGET, pageSize: PAGE }, LENGTH).options.fullLayers).toBe(0);
    // The first depth (at 20% of the filler and on, where H2O has had time to forget) that shows the whole story.
    for (const p of prompts.slice(2)) {
      const arkvale = runPhases(engine, p, 'arkvale');
      const recalledLayer = arkvale.afterPrefill.findIndex((held, l) => !held && arkvale.atAnswer[l]);
      if (recalledLayer < 0 || !answerMatches(arkvale.answer, p.passkey)) continue;
      const h2o = runPhases(engine, p, 'h2o');
      if (answerMatches(h2o.answer, p.passkey)) continue;
      // ArkVale: evicted when the context ended, recalled by the question, answered right.
      expect(arkvale.recalls).toBeGreaterThan(0);
      // H2O: every layer that dropped the needle at the end of the context still lacks it when answering.
      const dropped = h2o.afterPrefill.flatMap((held, l) => (held ? [] : [l]));
      expect(dropped.length).toBeGreaterThan(0);
      for (const l of dropped) expect(h2o.atAnswer[l]).toBe(false);
      expect(h2o.recalls).toBe(0);
      return;
    }
    expect.unreachable(`no depth of ${LENGTH}-token prompts shows ArkVale recalling the needle where H2O loses it`);
  }, 60_000);
});
