import type { StreamDecoder, Tokenizer } from '@arkvale/model-llama';

/**
 * A request's text as tokens arrive: incremental detokenizing, stop strings, and the
 * hold-back of any tail that could still become a stop string, so that streamed text
 * always equals the final text (the rule of model-llama's generation).
 */
export class TextStream {
  private readonly decoder: StreamDecoder;
  private readonly holdBack: number;
  private text = '';
  private emitted = 0;
  readonly tokenIds: number[] = [];
  finish: 'eos' | 'stop' | 'length' | null = null;

  constructor(
    tokenizer: Tokenizer,
    promptIds: readonly number[],
    private readonly stop: readonly string[],
    private readonly maxTokens: number,
    private readonly ignoreEos: boolean,
  ) {
    // The prompt's tail gives the first tokens their context (leading-space rules).
    this.decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: true, prefixIds: promptIds.slice(-8) });
    this.holdBack = Math.max(0, ...stop.map((s) => s.length - 1));
  }

  /** Takes one sampled token; returns the text that may be shown now. */
  accept(token: number, isEos: boolean): string {
    const eos = isEos && !this.ignoreEos;
    if (!eos) {
      this.tokenIds.push(token);
      this.text += this.decoder.push(token);
    }
    const last = eos || this.tokenIds.length >= this.maxTokens;
    if (last) this.text += this.decoder.flush();
    const cut = this.stopIndex();
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.finish = 'stop';
    } else if (last) {
      this.finish = eos ? 'eos' : 'length';
    }
    const safe = this.finish ? this.text.length : Math.max(this.emitted, this.text.length - this.holdBack);
    const out = safe > this.emitted ? this.text.slice(this.emitted, safe) : '';
    this.emitted = Math.max(this.emitted, safe);
    return out;
  }

  private stopIndex(): number {
    let best = -1;
    for (const s of this.stop) {
      const i = s ? this.text.indexOf(s) : -1;
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }
}
