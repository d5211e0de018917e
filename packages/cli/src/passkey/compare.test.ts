import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../test-support.js';
import { comparePasskeyRuns, parsePasskeyRun, type PasskeyRun } from './compare.js';
import type { PasskeyRow } from './evaluate.js';

function row(policy: PasskeyRow['policy'], budget: number | null, length: number, answers: string[], keys = answers.map((_, i) => `${10000 + i}`)): PasskeyRow {
  const prompts = answers.map((answer, i) => ({
    depth: i / answers.length,
    passkey: keys[i],
    promptTokens: length,
    answer,
    correct: answer.includes(keys[i]),
    agreesWithFull: true,
  }));
  return { length, policy, budget, accuracy: prompts.filter((p) => p.correct).length / prompts.length, agreement: 1, recallsPerStep: 0, seconds: 1, prompts };
}

const before: PasskeyRun = {
  backend: 'cuda (H200, f16)',
  rows: [row('full', null, 1024, [' 10000.', ' 10001.', ' 10002.']), row('arkvale', 512, 1024, [' 10000.', ' 10001.', ' 10002.'])],
};

describe('passkey run comparison', () => {
  it('counts the same answers per row and lists the changed ones', () => {
    const after: PasskeyRun = {
      rows: [
        row('arkvale', 512, 1024, [' 10000.', ' 99.', ' 10002.']),
        row('full', null, 1024, [' 10000.', ' 10001.', ' 10002.']),
        row('h2o', 512, 1024, ['x', 'y', 'z']),
      ],
    };
    const c = comparePasskeyRuns(before, after);
    expect(c.rows.map((r) => [r.label, r.same, r.prompts])).toEqual([
      ['full', 3, 3],
      ['arkvale @ 512', 2, 3],
    ]);
    expect(c.rows[1].changes).toEqual([{ depth: 1 / 3, passkey: '10001', before: ' 10001.', after: ' 99.' }]);
    expect(c.rows[1].accuracyAfter).toBeCloseTo(2 / 3);
    expect([c.same, c.prompts]).toEqual([5, 6]);
    expect(c.onlyAfter).toEqual(['h2o @ 512 at 1024 tokens']);
    expect(c.onlyBefore).toEqual([]);
  });

  it('refuses runs of different prompts and files that are not passkey runs', () => {
    const other: PasskeyRun = { rows: [row('full', null, 1024, [' 1.', ' 2.', ' 3.'], ['1', '2', '3'])] };
    expect(() => comparePasskeyRuns(before, other)).toThrow(
      /full at 1024 tokens, depth 0: pass key 10000 against 1 \(the runs used different seeds or filler\)/,
    );
    expect(() => parsePasskeyRun('{"rows": 3}', 'a.json')).toThrow(/a.json has no "rows" array/);
    expect(() => parsePasskeyRun('{', 'b.json')).toThrow(/b.json is not JSON/);
    expect(() => parsePasskeyRun('{"rows": [{"policy": "full"}]}', 'c.json')).toThrow(/c.json: row 0 lacks length, policy or prompts/);
  });

  it('arkvale eval compare: exit code 0 when every answer is the same, 1 when one changed, 2 on bad input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arkvale-compare-'));
    const write = (name: string, run: PasskeyRun) => {
      writeFileSync(join(dir, name), JSON.stringify(run));
      return join(dir, name);
    };
    const a = write('a.json', before);
    const same = await cli(['eval', 'compare', a, write('b.json', { ...before, kvDtype: 'fp8' })]);
    expect(same.code).toBe(0);
    expect(same.out).toMatch(/6 of 6 answers the same/);
    // Which run had fp8 pages is said beside its backend.
    expect(same.out).toMatch(/before: .*a\.json \(cuda \(H200, f16\)\)\nafter: +.*b\.json \(cuda \(H200, f16\), fp8 KV pages\)/);
    const changed = await cli([
      'eval',
      'compare',
      a,
      write('c.json', { rows: [row('arkvale', 512, 1024, [' 10000.', ' 99.', ' 10002.'])] }),
      '--json',
      join(dir, 'diff.json'),
    ]);
    expect(changed.code).toBe(1);
    const diff = JSON.parse(readFileSync(join(dir, 'diff.json'), 'utf8'));
    expect([diff.same, diff.prompts, diff.onlyBefore, diff.rows[0].changes[0].after]).toEqual([2, 3, ['full at 1024 tokens'], ' 99.']);
    expect(changed.out).toMatch(/arkvale @ 512 +1024 +100% -> 67% +2 of 3/);
    expect(changed.out).toMatch(/arkvale @ 512 at 1024 tokens, depth 0.33\d* \(key 10001\): " 10001." -> " 99."/);
    expect(changed.err).toMatch(/1 row\(s\) only in .*a.json: full at 1024 tokens\n/);
    const missing = await cli(['eval', 'compare', a, join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read .*nope.json: no such file/);
  });
});
