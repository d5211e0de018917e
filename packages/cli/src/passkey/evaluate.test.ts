import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@arkvale/cpu-backend';
import { seededUniform } from '@arkvale/core';
import { generateBatch } from '@arkvale/engine';
import { LlamaEngine } from '@arkvale/model-llama';
import { cli, modelDir } from '../test-support.js';
import { evaluatePasskey, type PasskeyEvalOptions } from './evaluate.js';
import { buildPasskeyPrompt, depths, readFiller } from './prompt.js';

describe('arkvale eval passkey at a length CI can afford', () => {
  it('runs the two-phase protocol by default: ArkVale agrees with Full and recalls, H2O agrees less', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'arkvale-eval-')), 'passkey.json');
    const r = await cli([
      'eval',
      'passkey',
      '-m',
      modelDir,
      '--lengths',
      '1024',
      '--budgets',
      '256',
      '--policies',
      'arkvale,h2o',
      '--depths',
      '4',
      '--batch',
      '4',
      '--json',
      out,
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/two-phase: context prefilled, question fed token by token/);
    expect(r.out).toMatch(/policy @ budget +1024 tokens +recalls\/step @ 1024/);
    expect(r.err).toMatch(/\[1\/3\] length 1024: arkvale @ 256/);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.protocol).toBe('two-phase');
    const row = (policy: string) => json.rows.find((x: { policy: string }) => x.policy === policy);
    expect(row('full').prompts).toHaveLength(4);
    expect(new Set(row('full').prompts.map((p: { passkey: string }) => p.passkey)).size).toBe(4);
    expect(row('arkvale').agreement).toBe(1);
    expect(row('arkvale').recallsPerStep).toBeGreaterThan(0);
    expect(row('h2o').recallsPerStep).toBe(0);
    expect(row('h2o').agreement).toBeLessThan(row('arkvale').agreement);
    // About 15 s beside the other packages on 2 cores.
  }, 90_000);

  it('rejects an unknown protocol', async () => {
    const r = await cli(['eval', 'passkey', '-m', modelDir, '--protocol', 'three-phase']);
    expect([r.code, r.err]).toEqual([2, expect.stringMatching(/unknown protocol "three-phase"; expected one of: two-phase, single-pass/)]);
  });

  it('runs each protocol as the generation it names: single-pass prefills the question, two-phase feeds it', async () => {
    const engine = await LlamaEngine.load(modelDir, new CpuBackend());
    const filler = readFiller(join(modelDir, 'filler.txt'));
    const options = (protocol: PasskeyEvalOptions['protocol']): PasskeyEvalOptions => ({
      protocol,
      lengths: [600],
      budgets: [128],
      policies: ['arkvale'],
      depthCount: 2,
      seed: 3,
      batch: 2,
      maxTokens: 6,
      plan: { pageSize: 16 },
      filler,
    });
    // The prompts evaluatePasskey builds: the same seed stream and depths.
    const uniform = seededUniform(3 + 600);
    const prompts = depths(2).map((d) => buildPasskeyPrompt(engine.model.tokenizer, filler, 600, d, uniform));
    const plan = { policy: 'arkvale' as const, budgetTokens: 128, pageSize: 16 };
    const single = generateBatch(
      engine,
      prompts.map((p) => ({ promptIds: p.ids, maxTokens: 6 })),
      plan,
    ).outputs.map((o) => o.text);
    const fed = generateBatch(
      engine,
      prompts.map((p) => ({ promptIds: p.contextIds, suffixIds: p.questionIds, maxTokens: 6 })),
      plan,
    ).outputs.map((o) => o.text);
    const answers = (protocol: PasskeyEvalOptions['protocol']) =>
      evaluatePasskey(engine, options(protocol))
        .find((r) => r.policy === 'arkvale')!
        .prompts.map((p) => p.answer);
    expect(answers('single-pass')).toEqual(single);
    expect(answers('two-phase')).toEqual(fed);
  }, 60_000);
});
