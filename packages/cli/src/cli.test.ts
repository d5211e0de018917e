import { copyFileSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { cli, modelDir } from './test-support.js';

function copyModel(): string {
  const dir = mkdtempSync(join(tmpdir(), 'arkvale-model-'));
  for (const f of readdirSync(modelDir)) copyFileSync(join(modelDir, f), join(dir, f));
  return dir;
}

describe('arkvale generate', () => {
  it('reproduces the golden greedy tokens with --json', async () => {
    const c = golden.cases[0];
    const r = await cli(['generate', c.text, '-m', modelDir, '--policy', 'full', '-n', '16', '--ignore-eos', '--json']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.tokenIds).toEqual(c.greedy.slice(0, 16));
    expect(json.promptTokens).toBe(c.ids.length);
    expect(json.kv.residentPages).toBeGreaterThan(0);
  });

  it('--tensor-parallel 2 splits the model over two ranks and gives the same tokens; a size the heads do not divide is refused', async () => {
    const c = golden.cases[0];
    const r = await cli([
      'generate',
      c.text,
      '-m',
      modelDir,
      '--backend',
      'cpu',
      '--policy',
      'full',
      '-n',
      '16',
      '--ignore-eos',
      '--json',
      '--tensor-parallel',
      '2',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ tokenIds: c.greedy.slice(0, 16), backend: 'cpu, tensor-parallel 2' });
    const three = await cli(['generate', 'hi', '-m', modelDir, '--tensor-parallel', '3']);
    expect([three.code, three.err]).toEqual([2, expect.stringMatching(/tensor-parallel size 3 does not divide the 4 query heads/)]);
    const zero = await cli(['generate', 'hi', '-m', modelDir, '--tensor-parallel', '0']);
    expect([zero.code, zero.err]).toEqual([2, expect.stringMatching(/tensor parallel must be an integer >= 1, got "0"/)]);
  });

  it('feeds --then text as decode steps after the prompt: under Full the same tokens as one prompt', async () => {
    const c = golden.cases[0];
    const cut = c.text.lastIndexOf(' ');
    const r = await cli([
      'generate',
      c.text.slice(0, cut),
      '--then',
      c.text.slice(cut),
      '-m',
      modelDir,
      '--policy',
      'full',
      '-n',
      '12',
      '--ignore-eos',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.promptTokens + json.suffixTokens).toBe(c.ids.length);
    expect(json.suffixTokens).toBeGreaterThan(0);
    expect(json.tokenIds).toEqual(c.greedy.slice(0, 12));
    const text = await cli(['generate', c.text.slice(0, cut), '--then', c.text.slice(cut), '-m', modelDir, '-n', '4']);
    expect(text.err).toMatch(/then: +\d+ tokens fed as decode steps in/);
  });

  it('streams text, then speed and KV statistics; reads stdin', async () => {
    const r = await cli(['generate', '-m', modelDir, '--policy', 'arkvale', '--budget', '64', '-n', '8', '--ignore-eos'], golden.cases[0].text);
    expect(r.code).toBe(0);
    // Everything fits the budget here, so the streamed text is the golden greedy text.
    expect(r.out.length).toBeGreaterThan(20);
    expect(golden.cases[0].greedy_text.startsWith(r.out.slice(0, -1))).toBe(true);
    expect(r.err).toMatch(/prompt: +6 tokens in .* tok\/s/);
    expect(r.err).toMatch(/KV pages: .* resident/);
    expect(r.err).toMatch(/KV moves: .* recalls/);
  });

  it('stops before a stop string and samples reproducibly with a seed', async () => {
    const stop = await cli(['generate', golden.cases[0].text, '-m', modelDir, '--policy', 'full', '-n', '32', '--stop', '.', '--json']);
    expect(JSON.parse(stop.out)).toMatchObject({ text: ' our lake', finishReason: 'stop' });
    const args = ['generate', golden.cases[0].text, '-m', modelDir, '-n', '12', '-t', '0.9', '--top-p', '0.9', '--seed', '7', '--json'];
    const a = JSON.parse((await cli(args)).out);
    const b = JSON.parse((await cli(args)).out);
    expect(a.tokenIds).toEqual(b.tokenIds);
  });

  it('answers the main job: a passkey prompt far over the budget', async () => {
    const prompt = readFileSync(new URL('../../../examples/passkey-3000.txt', import.meta.url), 'utf8');
    const passkey = /The pass key is (\d+)\./.exec(prompt)![1];
    const r = await cli([
      'generate',
      '-f',
      new URL('../../../examples/passkey-3000.txt', import.meta.url).pathname,
      '-m',
      modelDir,
      '--policy',
      'arkvale',
      '--budget',
      '512',
      '-n',
      '8',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.promptTokens).toBeGreaterThan(2500);
    expect(json.text.trim().replace(/\.$/, '')).toBe(passkey);
    expect(json.kv.hostOnlyPages).toBeGreaterThan(0);
  });

  it('--kv-dtype fp8: ArkVale over fp8 pages still answers a pass key far over the budget', async () => {
    const c = golden.cases[1];
    const r = await cli([
      'generate',
      c.text,
      '-m',
      modelDir,
      '--backend',
      'cpu',
      '--policy',
      'arkvale',
      '--budget',
      '256',
      '--kv-dtype',
      'fp8',
      '-n',
      '8',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json).toMatchObject({ kvDtype: 'fp8', pageSize: 16 });
    expect(json.text).toContain(c.expected_answer);
    expect(json.kv.evictions).toBeGreaterThan(0);
    const text = await cli(['generate', golden.cases[0].text, '-m', modelDir, '--backend', 'cpu', '--kv-dtype', 'fp8', '-n', '2']);
    expect(text.err).toMatch(/pages of 16 \(fp8\)/);
  });
});

describe('bad input gives a clear error and a non-zero exit code', () => {
  it('a missing model folder', async () => {
    const r = await cli(['generate', 'hi', '-m', '/nonexistent/model']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/\/nonexistent\/model/);
  });
  it('a truncated checkpoint', async () => {
    const dir = copyModel();
    truncateSync(join(dir, 'model.safetensors'), 1_000_000);
    const r = await cli(['generate', 'hi', '-m', dir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/model\.safetensors/);
  });
  it('an unsupported architecture', async () => {
    const dir = copyModel();
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));
    const r = await cli(['generate', 'hi', '-m', dir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/config\.json.*gpt2|gpt2.*config\.json/i);
  });
  it('a prompt longer than the model allows', async () => {
    const dir = copyModel();
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 16 }));
    const r = await cli(['generate', golden.cases[1].text, '-m', dir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /a prompt of 1007 tokens and its first new token exceed the model's limit of 16 positions \(max_position_embeddings in .*config\.json\)/,
    );
    // A prompt that fits generates up to the limit and says why it stopped.
    const capped = await cli(['generate', golden.cases[0].text, '-m', dir, '-n', '40', '--ignore-eos', '--json']);
    expect(capped.code).toBe(0);
    expect(JSON.parse(capped.out)).toMatchObject({ finishReason: 'length', tokenIds: golden.cases[0].greedy.slice(0, 10) });
  });
  it('a missing prompt file, an unknown policy, a bad page size, no prompt at all', async () => {
    expect((await cli(['generate', '-f', '/nope.txt', '-m', modelDir])).err).toMatch(/cannot read prompt file \/nope\.txt/);
    const policy = await cli(['generate', 'hi', '-m', modelDir, '--policy', 'lru']);
    expect([policy.code, policy.err]).toEqual([2, expect.stringMatching(/unknown policy "lru"/)]);
    expect((await cli(['generate', 'hi', '-m', modelDir, '--page-size', '12'])).err).toMatch(/page size must be a power of two/);
    const dtype = await cli(['generate', 'hi', '-m', modelDir, '--kv-dtype', 'fp16']);
    expect([dtype.code, dtype.err]).toEqual([2, expect.stringMatching(/--kv-dtype must be one of: auto, fp8; got "fp16"/)]);
    const none = await cli(['generate', '-m', modelDir]);
    expect([none.code, none.err]).toEqual([2, expect.stringMatching(/no prompt/)]);
  });
});

describe('arkvale codegen', () => {
  it('forwards to arkvale-codegen and returns its exit code', async () => {
    const out = mkdtempSync(join(tmpdir(), 'arkvale-codegen-'));
    const ok = await cli(['codegen', '--head-dim', '256', '--page-size', '8', '--dtype', 'bf16', '--group', '4', '--out', out]);
    expect(ok.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(JSON.stringify(manifest)).toContain('paged_decode_bf16_hd256_ps8_g4');
    const bad = await cli(['codegen', '--head-dim', '3', '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/head dim 3/);
  });
});

describe('arkvale inspect model', () => {
  it('describes the bundled model', async () => {
    const r = await cli(['inspect', 'model', '-m', modelDir]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/LlamaForCausalLM/);
    expect(r.out).toMatch(/4 layers, hidden 512, MLP 1536, 4 heads \/ 2 KV heads/);
    // K and V, 4 layers, 2 KV heads, head dim 128, 2 bytes: 4 KiB per token.
    expect(r.out).toMatch(/KV per token +4\.00 KiB/);
    // fp8: a byte per value and a scale byte per token and KV head.
    expect(r.out).toMatch(/KV per token .*2\.02 KiB \(fp8\)/);
  });
  it('prints help', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/generate/);
    expect(r.out).toMatch(/eval/);
    for (const command of [['generate'], ['eval', 'passkey'], ['serve']]) {
      const help = await cli([...command, '--help']);
      expect(help.out.replace(/\s+/g, ' ')).toMatch(/--kv-dtype <type> how KV pages store K and V: auto \(the backend's dtype\) \| fp8 .*\(default: "auto"\)/);
    }
  });
});
