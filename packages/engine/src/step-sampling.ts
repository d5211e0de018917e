import type { Backend } from '@arkvale/core';
import type { StepResult } from './batch-step.js';
import { rowLogprobs, type PositionLogprobs } from './logprobs.js';
import { sampleRows } from './sampler.js';

/*
 * What a step's logits give each row: its token (sampled, greedy, or held to a grammar),
 * the token's log-probabilities when asked, and the prompt rows' scores.
 */

/**
 * The token of each row of a step: a sample from its logits, or -1 for a row still
 * feeding its suffix (it takes its next suffix token, and nothing from its random
 * stream, so a suffix does not change what a seed generates after it).
 */
export function sampleStep(b: Backend, step: StepResult): number[] {
  // A prompt scored alone (max_tokens 0) takes nothing either.
  const sampled = step.jobs.flatMap((j, i) => (j.hasSuffixLeft || j.req.maxTokens === 0 ? [] : [i]));
  const tokens = step.jobs.map(() => -1);
  if (sampled.length === 0) return tokens;
  // Constrained rows draw from their logits with the grammar's mask applied (on the host).
  const free = sampled.filter((i) => step.jobs[i].req.constraint === null);
  for (const i of sampled) {
    const job = step.jobs[i];
    if (job.req.constraint === null) continue;
    const masked = job.constraint!.apply(Float32Array.from(b.readSync(b.sliceRows(step.logits, i, 1))));
    tokens[i] = sampleRows(b, b.fromArray(masked, [1, masked.length]), [{ ...job.req, uniform: job.uniform }])[0];
  }
  if (free.length === 0) return tokens;
  const all = free.length === step.jobs.length && step.promptRows.length === 0;
  const rows = all ? step.logits : b.gatherRows(step.logits, b.fromArray(free, [free.length], 'i32'));
  const drawn = sampleRows(
    b,
    rows,
    free.map((i) => ({ ...step.jobs[i].req, uniform: step.jobs[i].uniform })),
  );
  free.forEach((i, k) => (tokens[i] = drawn[k]));
  return tokens;
}

/** Each sampled token's log-probabilities, for the rows whose request asked for them (read to the host). */
export function tokenLogprobs(b: Backend, step: StepResult, tokens: readonly number[]): (PositionLogprobs | undefined)[] {
  return step.jobs.map((job, i) => {
    if (job.req.logprobs === null || tokens[i] < 0) return undefined;
    return rowLogprobs(b.readSync(b.sliceRows(step.logits, i, 1)), tokens[i], job.req.logprobs);
  });
}

/** The prompt rows' log-probabilities of the prompt token after each (one read for the step's rows). */
export function scorePrompts(b: Backend, step: StepResult): void {
  if (step.promptRows.length === 0) return;
  const count = step.promptRows.reduce((n, p) => n + p.count, 0);
  const data = b.readSync(b.sliceRows(step.logits, step.jobs.length, count));
  const vocab = data.length / count;
  let at = 0;
  for (const { job, first, count: n } of step.promptRows) {
    for (let r = 0; r < n; r++, at++) {
      const target = job.req.promptIds[first + r + 1];
      job.promptLogprobs.push(rowLogprobs(data.subarray(at * vocab, (at + 1) * vocab), target, job.req.promptLogprobs ?? 0));
    }
  }
}
