import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Tokenizer } from './tokenizer.js';
import { TINY_MODEL_DIR, expectArkvaleError, makeTmpDir, removeTmpDirs } from './test-support/fixtures.js';

afterAll(removeTmpDirs);

interface Golden {
  cases: { name: string; text: string; ids: number[]; greedy: number[]; greedy_text: string }[];
  tokenizer: { text: string; ids: number[] }[];
}
const golden = JSON.parse(fs.readFileSync(path.join(TINY_MODEL_DIR, 'golden.json'), 'utf8')) as Golden;
const tok = Tokenizer.fromDir(TINY_MODEL_DIR, { extraEosIds: [2] });

function streamAll(ids: readonly number[], options?: Parameters<Tokenizer['createStreamDecoder']>[0]): { text: string; pieces: string[] } {
  const dec = tok.createStreamDecoder(options);
  const pieces = ids.map((id) => dec.push(id));
  pieces.push(dec.flush());
  return { text: pieces.join(''), pieces };
}

describe('Tokenizer (bundled byte-level BPE)', () => {
  it('knows its special tokens', () => {
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.bosToken).toBe('<s>');
    expect(tok.eosToken).toBe('</s>');
    expect(tok.vocabSize).toBe(856);
    expect([...tok.specialIds].sort()).toEqual([0, 1, 2]);
    expect(tok.isEos(2)).toBe(true);
  });

  it.each(golden.cases.map((c) => [c.name, c] as const))('encodes golden case %s exactly', (_name, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
  });

  it.each(golden.tokenizer.map((t) => [JSON.stringify(t.text), t] as const))('encodes golden string %s exactly', (_name, t) => {
    expect(tok.encode(t.text)).toEqual(t.ids);
    expect(tok.encode(t.text, { addSpecialTokens: false })).toEqual(t.ids.slice(1));
  });

  it('decodes back to the text', () => {
    for (const t of [...golden.tokenizer, ...golden.cases]) {
      expect(tok.decode(t.ids, { skipSpecialTokens: true })).toBe(t.text);
      expect(tok.decode(t.ids)).toBe(`<s>${t.text}`);
    }
    for (const c of golden.cases) expect(tok.decode(c.greedy, { skipSpecialTokens: true })).toBe(c.greedy_text);
    expect(tok.decode([])).toBe('');
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { addSpecialTokens: false })).toEqual([]);
  });

  it('rejects ids outside the vocabulary', () => {
    expectArkvaleError(() => tok.decode([5, 856]), 'INVALID_ARGUMENT', '856');
    expectArkvaleError(() => tok.decode([-1]), 'INVALID_ARGUMENT');
    expectArkvaleError(() => tok.createStreamDecoder().push(1.5), 'INVALID_ARGUMENT');
  });
});

describe('stream decoder', () => {
  it('equals the full decode on every golden text', () => {
    for (const t of [...golden.tokenizer, ...golden.cases]) {
      expect(streamAll(t.ids).text).toBe(tok.decode(t.ids, { skipSpecialTokens: true }));
      expect(streamAll(t.ids, { skipSpecialTokens: false }).text).toBe(tok.decode(t.ids));
    }
    for (const c of golden.cases) {
      const ids = [...c.greedy];
      expect(streamAll(ids).text).toBe(tok.decode(ids, { skipSpecialTokens: true }));
    }
  });

  it('never emits half a character of the emoji / CJK string', () => {
    const t = golden.tokenizer.find((x) => x.text.includes('🙂'))!;
    const { pieces, text } = streamAll(t.ids);
    expect(text).toBe('émigré 中文 🙂');
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
    // 🙂 is four bytes over several tokens: nothing comes out until the last one.
    const emojiIds = tok.encode('🙂', { addSpecialTokens: false });
    expect(emojiIds.length).toBeGreaterThan(1);
    const dec = tok.createStreamDecoder();
    const out = emojiIds.map((id) => dec.push(id));
    expect(out.slice(0, -1).every((p) => p === '')).toBe(true);
    expect(out.at(-1)).toBe('🙂');
    expect(dec.ids).toEqual(emojiIds);
  });

  it('flushes an incomplete character as U+FFFD and skips special tokens by default', () => {
    const emojiIds = tok.encode('🙂', { addSpecialTokens: false });
    const dec = tok.createStreamDecoder();
    expect(dec.push(emojiIds[0])).toBe('');
    expect(dec.flush()).toContain('\uFFFD');
    const d2 = tok.createStreamDecoder();
    expect(d2.push(2)).toBe('');
    const d3 = tok.createStreamDecoder({ skipSpecialTokens: false });
    expect(d3.push(2)).toBe('</s>');
  });

  it('equals the full decode on random texts and random id sequences', () => {
    const chars = fc.constantFrom('a', 'b', ' ', 'é', '中', '文', '🙂', '7', '\n', 'ß', '😀', 'x', '.');
    fc.assert(
      fc.property(
        fc.array(chars, { maxLength: 40 }).map((a) => a.join('')),
        (text) => {
          const { text: streamed, pieces } = streamAll(tok.encode(text));
          expect(streamed).toBe(text);
          for (const p of pieces) expect(p).not.toContain('\uFFFD');
        },
      ),
      { numRuns: 500 },
    );
    // Arbitrary ids, invalid UTF-8 included: still the same text as decode().
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 855 }), { maxLength: 40 }), (ids) => {
        expect(streamAll(ids).text).toBe(tok.decode(ids, { skipSpecialTokens: true }));
      }),
      { numRuns: 500 },
    );
  });

  it('takes prefix ids as context without emitting them', () => {
    const ids = tok.encode(' The pass key is 71432.', { addSpecialTokens: false });
    const dec = tok.createStreamDecoder({ prefixIds: ids.slice(0, 4) });
    const text =
      ids
        .slice(4)
        .map((id) => dec.push(id))
        .join('') + dec.flush();
    expect(text).toBe(tok.decode(ids.slice(4)));
  });
});

describe('tokenizer files', () => {
  it('names a missing tokenizer.json', () => {
    const dir = makeTmpDir();
    expectArkvaleError(() => Tokenizer.fromDir(dir), 'MODEL_FILE', path.join(dir, 'tokenizer.json'));
  });

  it('names a corrupt tokenizer.json', () => {
    const dir = makeTmpDir();
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, '{"version": "1.0", "model": ');
    expectArkvaleError(() => Tokenizer.fromDir(dir), 'MODEL_FILE', file, 'not valid JSON');
    fs.writeFileSync(file, '{"version": "1.0"}');
    expectArkvaleError(() => Tokenizer.fromDir(dir), 'MODEL_FILE', file, '"model"');
    fs.writeFileSync(file, JSON.stringify({ model: { type: 'NoSuchModel' } }));
    expectArkvaleError(() => Tokenizer.fromDir(dir), 'MODEL_FILE', file, 'NoSuchModel');
    fs.writeFileSync(file, JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] } }));
    expectArkvaleError(() => Tokenizer.fromDir(dir), 'MODEL_FILE', file, 'empty vocabulary');
  });

  it('accepts AddedToken-style special tokens in tokenizer_config.json', () => {
    const dir = makeTmpDir();
    fs.copyFileSync(path.join(TINY_MODEL_DIR, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    fs.writeFileSync(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ bos_token: { __type: 'AddedToken', content: '<s>' }, eos_token: { content: '</s>' } }),
    );
    const t = Tokenizer.fromDir(dir);
    expect(t.bosId).toBe(1);
    expect(t.eosIds).toEqual([2]);
  });
});
