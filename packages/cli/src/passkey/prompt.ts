import { readFileSync } from 'node:fs';
import { ArkvaleError, invalidArgument } from '@arkvale/core';

/** What `buildPasskeyPrompt` needs of a tokenizer. */
export interface TextEncoder {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
}

export interface PasskeyPrompt {
  readonly text: string;
  /** The whole prompt, BOS included: `contextIds` then `questionIds`. */
  readonly ids: number[];
  /** Intro, filler and needle: what the two-phase protocol prefills. */
  readonly contextIds: number[];
  /** The question, fed token by token after the context in the two-phase protocol. */
  readonly questionIds: number[];
  readonly passkey: string;
  /** Fraction of the filler before the pass key, 0 .. 1. */
  readonly depth: number;
}

// The paper's protocol, in the sentence style the bundled model was trained on.
const INTRO = ' There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about it.';
const QUESTION = ' What is the pass key? The pass key is';
const needle = (key: string) => ` The pass key is ${key}. Remember it. ${key} is the pass key.`;

/** Reads filler sentences, one per line. */
export function readFiller(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ArkvaleError('MODEL_FILE', `cannot read filler text ${file}: ${(e as Error).message}`);
  }
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.length === 0) throw new ArkvaleError('MODEL_FILE', `filler text ${file} has no sentences`);
  return lines;
}

/** A five-digit pass key, first digit not 0, from a seeded stream. */
export function passkeyFor(uniform: () => number): string {
  return String(10000 + Math.floor(uniform() * 90000));
}

/** Depths of the paper's protocol: `count` evenly spaced from 0% (0, 5, ..., 95% for 20). */
export function depths(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i / count);
}

/**
 * Filler sentences around the pass key so that the whole prompt (BOS included) is
 * about `targetTokens` long, the key placed after `depth` of the filler.
 */
export function buildPasskeyPrompt(
  tokenizer: TextEncoder,
  filler: readonly string[],
  targetTokens: number,
  depth: number,
  uniform: () => number,
): PasskeyPrompt {
  if (!(depth >= 0 && depth <= 1)) throw invalidArgument(`depth must be within 0..1, got ${depth}`);
  const passkey = passkeyFor(uniform);
  const count = (s: string) => tokenizer.encode(s, { addSpecialTokens: false }).length;
  const fixed = 1 + count(INTRO) + count(needle(passkey)) + count(QUESTION);
  if (targetTokens < fixed + 1) throw invalidArgument(`a passkey prompt needs at least ${fixed + 1} tokens, asked for ${targetTokens}`);
  const sentences: string[] = [];
  let tokens = fixed;
  let i = Math.floor(uniform() * filler.length);
  while (tokens < targetTokens) {
    const s = ` ${filler[i % filler.length]}`;
    const n = count(s);
    if (tokens + n > targetTokens && sentences.length > 0) break;
    sentences.push(s);
    tokens += n;
    i++;
  }
  const at = Math.round(depth * sentences.length);
  const context = INTRO + sentences.slice(0, at).join('') + needle(passkey) + sentences.slice(at).join('');
  const text = context + QUESTION;
  const ids = tokenizer.encode(text);
  // The question starts a word, so the prompt's tokens split exactly at its start:
  // both protocols see the same token ids.
  const questionIds = tokenizer.encode(QUESTION, { addSpecialTokens: false });
  const contextIds = ids.slice(0, ids.length - questionIds.length);
  if (!questionIds.every((t, i) => ids[contextIds.length + i] === t)) {
    throw invalidArgument('the tokenizer merges the passkey question with the text before it; the two-phase protocol needs them apart');
  }
  return { text, ids, contextIds, questionIds, passkey, depth };
}

/** Exact match: the answer's first number is the pass key. */
export function answerMatches(answer: string, passkey: string): boolean {
  const m = /\d+/.exec(answer);
  return m !== null && m[0] === passkey && answer.slice(0, m.index).trim() === '';
}
