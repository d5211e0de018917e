import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ArkvaleError, invalidArgument } from '@arkvale/core';
import { errorMessage, isFile, readJsonObject } from './files.js';

export interface EncodeOptions {
  /** Apply the post-processor's special tokens (the BOS of LLaMA tokenizers). Default true. */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, ...) from the text. Default false, as in transformers. */
  readonly skipSpecialTokens?: boolean;
}

export interface StreamDecoderOptions {
  /** Default true: a streamed reply should not show `</s>`. */
  readonly skipSpecialTokens?: boolean;
  /**
   * Token ids that precede the streamed ones (e.g. the prompt's last few tokens). They
   * are not emitted, but give the first streamed tokens their context, which matters
   * for decoders that strip a leading space from the first token (SentencePiece).
   */
  readonly prefixIds?: readonly number[];
}

/**
 * Incremental detokenizer: `push` returns only new, complete text. Bytes of a UTF-8
 * character split across byte-level BPE tokens are held back until the character is
 * complete, so the concatenation of everything pushed (plus `flush()`) equals the
 * full decode of the ids.
 */
export interface StreamDecoder {
  push(id: number): string;
  /** Emits whatever is held back (an incomplete character decodes as U+FFFD). */
  flush(): string;
  /** The ids pushed so far (special tokens included). */
  readonly ids: readonly number[];
}

export interface TokenizerInit {
  /** Label for error messages, typically the tokenizer.json path. */
  readonly source?: string;
  /** EOS ids beyond tokenizer_config.json's `eos_token` (config / generation_config). */
  readonly extraEosIds?: readonly number[];
  /** BOS id to use when tokenizer_config.json names no `bos_token`. */
  readonly fallbackBosId?: number | null;
}

/** `bos_token` and friends are a string or an AddedToken-like `{ content }` object. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

/** A byte-level / SentencePiece-style Hugging Face tokenizer (tokenizer.json + tokenizer_config.json). */
export class Tokenizer {
  readonly source: string;
  /** One past the largest token id. */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  /** Every id that ends generation: tokenizer_config's eos_token plus `extraEosIds`. */
  readonly eosIds: readonly number[];
  readonly specialIds: ReadonlySet<number>;
  /** tokenizer_config.json with special tokens given as plain strings. */
  readonly tokenizerConfig: Readonly<Record<string, unknown>>;
  /**
   * How token strings spell bytes (`idToToken`): GPT-2's byte-level alphabet ('Ġthe'),
   * SentencePiece pieces with byte fallback ('▁the', '<0x0A>'), or the text itself.
   * Grammar-constrained decoding needs it to read the vocabulary.
   */
  readonly vocabType: 'byte_level' | 'byte_fallback' | 'raw';
  private readonly hf: HfTokenizer;
  private readonly cleanUpSpaces: boolean;

  constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown> = {}, init: TokenizerInit = {}) {
    this.source = init.source ?? 'tokenizer.json';
    const model = tokenizerJson.model;
    if (model === null || typeof model !== 'object' || Array.isArray(model)) {
      throw new ArkvaleError('MODEL_FILE', `${this.source} is not a Hugging Face tokenizer: missing the "model" object`);
    }
    const json: Record<string, unknown> = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizerJson };
    const config: Record<string, unknown> = { ...tokenizerConfig };
    for (const key of SPECIAL_TOKEN_KEYS) {
      if (key in config) config[key] = tokenContent(config[key]);
    }
    // transformers' default since 4.45; tokenizers.js would default to true.
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
    this.tokenizerConfig = config;
    this.vocabType = vocabTypeOf(json);
    try {
      this.hf = new HfTokenizer(json, config);
    } catch (e) {
      throw new ArkvaleError('MODEL_FILE', `cannot load tokenizer ${this.source}: ${errorMessage(e)}`);
    }

    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    if (this.vocabSize === 0) throw new ArkvaleError('MODEL_FILE', `tokenizer ${this.source} has an empty vocabulary`);
    const special = new Set<number>();
    for (const [id, tok] of this.hf.get_added_tokens_decoder()) if (tok.special) special.add(id);
    this.specialIds = special;

    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
    this.bosId = this.bosToken !== null ? this.requireId(this.bosToken, 'bos_token') : (init.fallbackBosId ?? null);
    const eos = new Set<number>();
    if (this.eosToken !== null) eos.add(this.requireId(this.eosToken, 'eos_token'));
    for (const id of init.extraEosIds ?? []) eos.add(id);
    this.eosIds = [...eos];
  }

  /** Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`. */
  static fromDir(dir: string, init: Omit<TokenizerInit, 'source'> = {}): Tokenizer {
    const json = path.join(dir, 'tokenizer.json');
    const config = path.join(dir, 'tokenizer_config.json');
    if (!isFile(json)) {
      throw new ArkvaleError('MODEL_FILE', `tokenizer not found: ${path.resolve(json)} (only tokenizer.json "fast" tokenizers are supported)`);
    }
    return new Tokenizer(readJsonObject(json), isFile(config) ? readJsonObject(config) : {}, { ...init, source: path.resolve(json) });
  }

  private requireId(token: string, key: string): number {
    const id = this.hf.token_to_id(token);
    if (id === undefined) {
      throw new ArkvaleError('MODEL_FILE', `tokenizer_config.json's ${key} ${JSON.stringify(token)} is not in the vocabulary of ${this.source}`);
    }
    return id;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw invalidArgument(`encode: expected a string, got ${typeof text}`);
    if (text === '' && options.addSpecialTokens === false) return [];
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (const id of ids) this.checkId(id);
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  /** The token string of an id (e.g. "Ġthe"), or undefined. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  isEos(id: number): boolean {
    return this.eosIds.includes(id);
  }

  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    return new IncrementalDecoder(this, options.skipSpecialTokens ?? true, options.prefixIds ?? []);
  }

  /** Throws INVALID_ARGUMENT unless `id` is a token id of this tokenizer. */
  checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
      throw invalidArgument(`token id ${String(id)} is not in the vocabulary of ${this.source} (${this.vocabSize} ids)`);
    }
  }
}

/**
 * Decodes a sliding window of ids: `prefix` (already emitted, kept as context) and the
 * ids after it. New text is the window's decode minus the prefix's decode, emitted only
 * when it does not end in U+FFFD (an incomplete UTF-8 sequence).
 */
class IncrementalDecoder implements StreamDecoder {
  private readonly all: number[] = [];
  /** Ids that take part in decoding (special tokens removed when skipping). */
  private readonly window: number[];
  private prefixOffset = 0;
  private readOffset: number;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly skipSpecial: boolean,
    prefixIds: readonly number[],
  ) {
    for (const id of prefixIds) tokenizer.checkId(id);
    this.window = prefixIds.filter((id) => !(skipSpecial && tokenizer.isSpecial(id)));
    this.readOffset = this.window.length;
  }

  get ids(): readonly number[] {
    return this.all;
  }

  push(id: number): string {
    this.tokenizer.checkId(id);
    this.all.push(id);
    if (this.skipSpecial && this.tokenizer.isSpecial(id)) return '';
    this.window.push(id);
    return this.emit(false);
  }

  flush(): string {
    return this.emit(true);
  }

  private emit(force: boolean): string {
    if (this.readOffset === this.window.length) return '';
    const prefix = this.tokenizer.decode(this.window.slice(this.prefixOffset, this.readOffset));
    const text = this.tokenizer.decode(this.window.slice(this.prefixOffset));
    // More pending ids than bytes in a UTF-8 character: the bytes are invalid, not incomplete.
    const stuck = this.window.length - this.readOffset > 8;
    if (!force && !stuck && (text.length <= prefix.length || text.endsWith('\uFFFD'))) return '';
    const delta = text.startsWith(prefix) ? text.slice(prefix.length) : text.slice(commonPrefixLength(prefix, text));
    // Keep the window short: the next prefix is what was just read.
    this.prefixOffset = this.readOffset;
    this.readOffset = this.window.length;
    if (this.prefixOffset > 4096) {
      this.window.splice(0, this.prefixOffset);
      this.readOffset -= this.prefixOffset;
      this.prefixOffset = 0;
    }
    return delta;
  }
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The vocabulary's spelling of bytes, from the decoder (or pre-tokenizer) and the model's byte_fallback. */
function vocabTypeOf(json: Record<string, unknown>): Tokenizer['vocabType'] {
  const text = JSON.stringify([json.decoder, json.pre_tokenizer]);
  if (text.includes('"ByteLevel"')) return 'byte_level';
  if ((json.model as { byte_fallback?: unknown }).byte_fallback === true || text.includes('"ByteFallback"')) return 'byte_fallback';
  return 'raw';
}
