import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, modelDir } from '../test-support.js';

describe('arkvale eval passkey at a length CI can afford', () => {
  it('ArkVale at a quarter of the prompt agrees with Full; StreamingLLM agrees less', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'arkvale-eval-')), 'passkey.json');
    const r = await cli(['eval', 'passkey', '-m', modelDir, '--lengths', '1024', '--budgets', '256', '--policies', 'arkvale,streaming-llm', '--json', out]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/policy @ budget/);
    expect(r.err).toMatch(/\[1\/3\] length 1024: arkvale @ 256/);
    const { rows } = JSON.parse(readFileSync(out, 'utf8'));
    const row = (policy: string) => rows.find((x: { policy: string }) => x.policy === policy);
    expect(row('full').prompts).toHaveLength(20);
    expect(new Set(row('full').prompts.map((p: { passkey: string }) => p.passkey)).size).toBe(20);
    expect(row('arkvale').agreement).toBeGreaterThanOrEqual(0.9);
    expect(row('streaming-llm').agreement).toBeLessThan(row('arkvale').agreement);
  }, 600_000);
});
