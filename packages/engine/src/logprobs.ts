/** A token and its log-probability under the model (log-softmax of its logits, before temperature). */
export interface TokenLogprob {
  readonly tokenId: number;
  readonly logprob: number;
}

/** One position's log-probabilities: the token there and, when asked for, the `top` most likely ones. */
export interface PositionLogprobs extends TokenLogprob {
  readonly top: readonly TokenLogprob[];
}

/**
 * Log-probabilities of one row of logits (f32, read to the host): the chosen token's
 * and the `top` most likely, most likely first (ties to the lower id). Summed in f64:
 * the harness adds thousands of these.
 */
export function rowLogprobs(logits: ArrayLike<number>, tokenId: number, top: number): PositionLogprobs {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const norm = max + Math.log(sum);
  const best: number[] = [];
  for (let i = 0; i < logits.length && top > 0; i++) {
    if (best.length === top && logits[i] <= logits[best[top - 1]]) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
    best.splice(at, 0, i);
    if (best.length > top) best.pop();
  }
  return { tokenId, logprob: logits[tokenId] - norm, top: best.map((t) => ({ tokenId: t, logprob: logits[t] - norm })) };
}
