import { describe, expect, it } from 'vitest';
import { seededUniform } from '@arkvale/core';
import { Tokenizer } from '@arkvale/model-llama';
import { join } from 'node:path';
import { modelDir } from '../test-support.js';
import { answerMatches, buildPasskeyPrompt, depths, readFiller } from './prompt.js';

describe('passkey prompts', () => {
  const tokenizer = Tokenizer.fromDir(modelDir);
  const filler = readFiller(join(modelDir, 'filler.txt'));

  it('hits the target length and hides the key at the asked depth', () => {
    const uniform = seededUniform(1);
    for (const depth of [0, 0.5, 0.95]) {
      const p = buildPasskeyPrompt(tokenizer, filler, 1000, depth, uniform);
      expect(p.ids.length).toBeLessThanOrEqual(1000);
      expect(p.ids.length).toBeGreaterThan(960);
      expect(p.ids[0]).toBe(1);
      expect(p.passkey).toMatch(/^[1-9]\d{4}$/);
      const at = p.text.indexOf(`The pass key is ${p.passkey}.`);
      const fillerStart = p.text.indexOf('about it.') + 'about it.'.length;
      const fillerEnd = p.text.lastIndexOf(' What is the pass key?');
      const relative = (at - fillerStart) / (fillerEnd - fillerStart);
      expect(Math.abs(relative - depth)).toBeLessThan(0.05);
      expect(p.text.endsWith(' What is the pass key? The pass key is')).toBe(true);
    }
  });

  it('splits every prompt into context and question at the same token ids', () => {
    const uniform = seededUniform(2);
    for (const depth of [0, 0.35, 0.9]) {
      const p = buildPasskeyPrompt(tokenizer, filler, 1500, depth, uniform);
      expect([...p.contextIds, ...p.questionIds]).toEqual(p.ids);
      expect(tokenizer.decode(p.questionIds)).toBe(' What is the pass key? The pass key is');
      // The needle is in the context, the question holds no digits.
      expect(tokenizer.decode(p.contextIds)).toContain(`The pass key is ${p.passkey}.`);
      expect(p.questionIds.length).toBeLessThan(16);
    }
  });

  it('uses the 20 depths of the paper', () => {
    expect(depths(20)).toEqual(Array.from({ length: 20 }, (_, i) => i / 20));
    expect(depths(20)[19]).toBeCloseTo(0.95, 12);
  });

  it('matches an answer exactly', () => {
    expect(answerMatches(' 71432.', '71432')).toBe(true);
    expect(answerMatches(' 714320.', '71432')).toBe(false);
    expect(answerMatches(' 7143.', '71432')).toBe(false);
    expect(answerMatches(' the key 71432', '71432')).toBe(false);
  });
});
