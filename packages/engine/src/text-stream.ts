import type { StopReason } from './types.js';
import type { StreamDecoder, Tokenizer } from '@arkvale/model-llama';

/**
 * A sequence's text as its tokens arrive: incremental detokenizing, stop strings and
 * end of sequence, and the hold-back of any tail that could still become a stop
 * string, so that text streamed so far always equals the start of the final text.
 * Generation and the server both run every sampled token through one of these.
 */
export class TextStream {
  /** null for a model without a tokenizer (token ids only): no text, no stop strings. */
  private readonly decoder: StreamDecoder | null;
  private readonly holdBack: number;
  private current = '';
  private emitted = 0;
  readonly tokenIds: number[] = [];
  finish: StopReason | null = null;

  constructor(
    tokenizer: Tokenizer | null,
    /** What precedes the first generated token (prompt and fed suffix). */
    contextIds: readonly number[],
    private readonly stop: readonly string[],
    private readonly maxTokens: number,
    private readonly ignoreEos: boolean,
  ) {
    // The context's tail gives the first tokens their leading-space rules.
    if (!tokenizer && stop.length > 0) throw new RangeError('stop strings need a tokenizer: this model has token ids only');
    this.decoder = tokenizer?.createStreamDecoder({ skipSpecialTokens: true, prefixIds: contextIds.slice(-8) }) ?? null;
    this.holdBack = Math.max(0, ...stop.map((s) => s.length - 1));
  }

  /** The text so far (stop strings cut). */
  get text(): string {
    return this.current;
  }

  /** Takes one sampled token; returns the text that may be shown now. */
  accept(token: number, isEos: boolean): string {
    const eos = isEos && !this.ignoreEos;
    if (!eos) {
      this.tokenIds.push(token);
      if (this.decoder) this.current += this.decoder.push(token);
    }
    const last = eos || this.tokenIds.length >= this.maxTokens;
    // Bytes of a character still incomplete are written out at the end.
    if (last && this.decoder) this.current += this.decoder.flush();
    const cut = this.stopIndex();
    if (cut >= 0) {
      this.current = this.current.slice(0, cut);
      this.finish = 'stop';
    } else if (last) {
      this.finish = eos ? 'eos' : 'length';
    }
    const safe = this.finish ? this.current.length : Math.max(this.emitted, this.current.length - this.holdBack);
    const out = safe > this.emitted ? this.current.slice(this.emitted, safe) : '';
    this.emitted = Math.max(this.emitted, safe);
    return out;
  }

  private stopIndex(): number {
    let best = -1;
    for (const s of this.stop) {
      const i = s ? this.current.indexOf(s) : -1;
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }
}
