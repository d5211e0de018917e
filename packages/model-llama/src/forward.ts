import type { Backend, KvCache, RopeTable, Tensor } from '@arkvale/core';
import { ArkvaleError } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { ropeSpec } from './config.js';
import type { LlamaWeights } from './weights.js';

/** A sequence already admitted to the cache, with its prompt tokens. */
export interface PrefillRequest {
  readonly id: number;
  readonly tokens: readonly number[];
}

type Attend = (layer: number, q: Tensor, k: Tensor, v: Tensor) => Tensor;

/**
 * The LLaMA forward pass, written once against `Backend`: every KV access goes through
 * the `KvCache`, so any policy (and any backend) runs the same model code.
 */
export class LlamaForward {
  readonly scale: number;
  private readonly rope: RopeTable;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly backend: Backend,
    readonly maxPositions = config.maxPositionEmbeddings,
  ) {
    this.scale = 1 / Math.sqrt(config.headDim);
    this.rope = backend.createRopeTable(ropeSpec(config, maxPositions));
  }

  /** Throws PROMPT_TOO_LONG unless `tokens` positions fit the model. */
  checkLength(tokens: number, what = `${tokens} tokens`): void {
    if (tokens > this.maxPositions) {
      throw new ArkvaleError(
        'PROMPT_TOO_LONG',
        `${what} exceed the model's limit of ${this.maxPositions} positions (max_position_embeddings in ${this.config.source})`,
      );
    }
  }

  /**
   * Runs the prompts of admitted sequences (of any lengths) through every layer in one
   * batch of rows and returns the logits of each prompt's last token, [N, vocab].
   */
  prefill(cache: KvCache, requests: readonly PrefillRequest[]): Tensor {
    const b = this.backend;
    const tokens = requests.flatMap((r) => r.tokens);
    const positions = requests.flatMap((r) => r.tokens.map((_, i) => i));
    requests.forEach((r) => this.checkLength(r.tokens.length));
    const starts: number[] = [];
    let row = 0;
    for (const r of requests) {
      starts.push(row);
      row += r.tokens.length;
    }
    const hidden = this.layers(tokens, positions, (layer, q, k, v) => {
      const outs = requests.map((r, i) => {
        const slice = (t: Tensor) => b.sliceRows(t, starts[i], r.tokens.length);
        return cache.prefillLayer(r.id, layer, slice(q), slice(k), slice(v), this.scale);
      });
      return outs.length === 1 ? outs[0] : b.concatRows(outs);
    });
    const lastRows = requests.map((r, i) => starts[i] + r.tokens.length - 1);
    return this.logits(b.gatherRows(hidden, b.fromArray(lastRows, [lastRows.length], 'i32')));
  }

  /** One decoding step: `tokens[i]` is the newest token of sequence `ids[i]`; returns logits [B, vocab]. */
  decode(cache: KvCache, ids: readonly number[], tokens: readonly number[]): Tensor {
    const step = cache.beginStep(ids);
    step.positions.forEach((p) => this.checkLength(p + 1));
    const hidden = this.layers(tokens, step.positions, (layer, q, k, v) => cache.decodeLayer(step, layer, q, k, v, this.scale));
    return this.logits(hidden);
  }

  private layers(tokens: readonly number[], positions: readonly number[], attend: Attend): Tensor {
    const b = this.backend;
    const c = this.config;
    const n = tokens.length;
    const pos = b.fromArray(positions, [n], 'i32');
    let x = b.gatherRows(this.weights.embedTokens, b.fromArray(tokens, [n], 'i32'));
    this.weights.layers.forEach((w, l) => {
      const h = b.rmsNorm(x, w.inputNorm, c.rmsNormEps);
      const q = b.rope(b.reshape(b.matmul(h, w.q), [n, c.numHeads, c.headDim]), pos, this.rope);
      const k = b.rope(b.reshape(b.matmul(h, w.k), [n, c.numKvHeads, c.headDim]), pos, this.rope);
      const v = b.reshape(b.matmul(h, w.v), [n, c.numKvHeads, c.headDim]);
      const attn = b.reshape(attend(l, q, k, v), [n, c.numHeads * c.headDim]);
      x = b.add(x, b.matmul(attn, w.o));
      const h2 = b.rmsNorm(x, w.postNorm, c.rmsNormEps);
      x = b.add(x, b.matmul(b.siluGate(b.matmul(h2, w.gate), b.matmul(h2, w.up)), w.down));
    });
    return x;
  }

  private logits(hidden: Tensor): Tensor {
    const b = this.backend;
    return b.matmul(b.rmsNorm(hidden, this.weights.norm, this.config.rmsNormEps), this.weights.lmHead);
  }
}
