import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@arkvale/cpu-backend';
import { seededUniform, type KvDtype } from '@arkvale/core';
import { LlamaEngine } from '@arkvale/model-llama';
import { modelDir } from '../test-support.js';
import { answerMatches, buildPasskeyPrompt, readFiller, type PasskeyPrompt } from './prompt.js';

const LENGTH = 2048;
const BUDGET = 256;
const PAGE = 16;

interface Phases {
  /** Per layer, per needle page (page layers) or needle token (token layers): held at the end of the context's prefill. */
  readonly afterPrefill: boolean[][];
  /** The same when the answer is generated, after the question was fed. */
  readonly atAnswer: boolean[][];
  readonly answer: string;
  readonly recalls: number;
}

/** Positions of the needle sentence's tokens in the context. */
function needlePositions(engine: LlamaEngine, p: PasskeyPrompt): number[] {
  const needle = engine.model.tokenizer.encode(` The pass key is ${p.passkey}. Remember it. ${p.passkey} is the pass key.`, { addSpecialTokens: false });
  const at = p.contextIds.findIndex((_, t) => needle.every((k, j) => p.contextIds[t + j] === k));
  expect(at).toBeGreaterThan(0);
  return needle.map((_, j) => at + j);
}

/** The two-phase protocol by hand, looking at every layer between the phases. */
function runPhases(engine: LlamaEngine, p: PasskeyPrompt, policy: 'arkvale' | 'h2o', kvDtype: KvDtype): Phases {
  const needle = needlePositions(engine, p);
  const pages = [...new Set(needle.map((t) => Math.floor(t / PAGE)))];
  const cache = engine.createCache({ policy, budgetTokens: BUDGET, pageSize: PAGE, kvDtype }, LENGTH + 16);
  expect(cache.geometry.kvDtype).toBe(kvDtype === 'fp8' ? 'fp8' : undefined);
  const id = cache.admit(p.contextIds.length);
  const holds = () =>
    Array.from({ length: engine.model.config.numLayers }, (_, l) => {
      const v = cache.view(id, l);
      return v.kind === 'page' ? pages.map((pg) => v.resident.includes(pg)) : needle.map((t) => v.positions.includes(t));
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
  cache.close();
  return { afterPrefill, atAnswer, answer: engine.model.tokenizer.decode(answer), recalls };
}

describe('the two-phase passkey protocol', () => {
  // fp8: the needle's page is evicted at the end of prefill, backed up and recalled as fp8 bytes, and attended dequantized.
  it.each(['auto', 'fp8'] as const)(
    'ArkVale recalls the needle page while the question is fed; H2O at the same budget never gets it back (--kv-dtype %s)',
    async (kvDtype) => {
      const engine = await LlamaEngine.load(modelDir, new CpuBackend());
      const filler = readFiller(join(modelDir, 'filler.txt'));
      const uniform = seededUniform(7);
      const prompts = Array.from({ length: 10 }, (_, i) => buildPasskeyPrompt(engine.model.tokenizer, filler, LENGTH, i / 10, uniform));
      // The first layer keeps every page (the default for the bundled 4-layer model); the other three are budgeted.
      const fullLayers = engine.createCache({ policy: 'arkvale', budgetTokens: BUDGET, pageSize: PAGE }, LENGTH).options.fullLayers;
      expect(fullLayers).toBe(1);
      // The first depth (from 20% of the filler on, where H2O has had time to forget) that shows the whole story.
      for (const p of prompts.slice(2)) {
        const arkvale = runPhases(engine, p, 'arkvale', kvDtype);
        // A budgeted layer where a needle page was evicted when the context ended and is back for the answer.
        const recalled = arkvale.afterPrefill.some((held, l) => l >= fullLayers && held.some((h, j) => !h && arkvale.atAnswer[l][j]));
        if (!recalled || !answerMatches(arkvale.answer, p.passkey)) continue;
        const h2o = runPhases(engine, p, 'h2o', kvDtype);
        if (answerMatches(h2o.answer, p.passkey)) continue;
        expect(arkvale.recalls).toBeGreaterThan(0);
        // H2O: needle tokens dropped by the end of the context never come back, in any layer.
        const dropped = h2o.afterPrefill.flatMap((held, l) => held.flatMap((h, j) => (h ? [] : [[l, j] as const])));
        expect(dropped.length).toBeGreaterThan(0);
        for (const [l, j] of dropped) expect(h2o.atAnswer[l][j]).toBe(false);
        expect(h2o.recalls).toBe(0);
        return;
      }
      expect.unreachable(`no depth of ${LENGTH}-token prompts shows ArkVale recalling the needle where H2O loses it`);
    },
    60_000,
  );
});
