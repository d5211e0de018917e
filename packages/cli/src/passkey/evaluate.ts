import type { PolicyName } from '@arkvale/core';
import { seededUniform } from '@arkvale/core';
import { generateBatch, type BatchResult, type GenerationRequest } from '@arkvale/engine';
import type { CachePlan, LlamaEngine, ModelForward } from '@arkvale/model-llama';
import type { PasskeyPrompt } from './prompt.js';
import { answerMatches, buildPasskeyPrompt, depths } from './prompt.js';

/**
 * How a prompt reaches the cache. `two-phase` (the paper's, the default): the context
 * is prefilled, then the question is fed token by token as decode steps, so a budgeted
 * policy chooses what stays resident before the question exists and must recall the
 * needle when it arrives. `single-pass`: the whole prompt, question included, is
 * prefilled, so the prefill selection already sees the question's last query.
 */
export const PASSKEY_PROTOCOLS = ['two-phase', 'single-pass'] as const;
export type PasskeyProtocol = (typeof PASSKEY_PROTOCOLS)[number];

export interface PasskeyEvalOptions {
  readonly protocol: PasskeyProtocol;
  readonly lengths: readonly number[];
  readonly budgets: readonly number[];
  /** Policies compared with Full (Full always runs first, as the reference). */
  readonly policies: readonly PolicyName[];
  readonly depthCount: number;
  readonly seed: number;
  /** Prompts per batch. */
  readonly batch: number;
  readonly maxTokens: number;
  /** The plan's knobs other than policy and budget. */
  readonly plan: Omit<CachePlan, 'policy' | 'budgetTokens'>;
  readonly filler: readonly string[];
  readonly onProgress?: (done: number, total: number, label: string) => void;
  /** Each row as soon as it is measured (a long evaluation can save as it goes). */
  readonly onRow?: (row: PasskeyRow) => void;
}

export interface PromptResult {
  readonly depth: number;
  readonly passkey: string;
  readonly promptTokens: number;
  readonly answer: string;
  readonly correct: boolean;
  /** Same generated tokens as Full on the same prompt. */
  readonly agreesWithFull: boolean;
}

export interface PasskeyRow {
  readonly length: number;
  readonly policy: PolicyName;
  /** null for Full (no budget). */
  readonly budget: number | null;
  readonly accuracy: number;
  readonly agreement: number;
  /** Pages recalled per sequence per decode step (all layers together), question and answer steps. */
  readonly recallsPerStep: number;
  readonly seconds: number;
  readonly prompts: PromptResult[];
}

/** `arkvale @ 256`, or `full` for a policy without a budget. */
export function policyLabel(policy: PolicyName, budget: number | null): string {
  return budget === null ? policy : `${policy} @ ${budget}`;
}

/** The paper's passkey evaluation: the same prompts for every policy, exact match, agreement with Full. */
export function evaluatePasskey(engine: LlamaEngine<ModelForward>, o: PasskeyEvalOptions): PasskeyRow[] {
  const runs = o.lengths.length * (1 + o.policies.filter((p) => p !== 'full').length * o.budgets.length);
  let done = 0;
  const rows: PasskeyRow[] = [];
  for (const length of o.lengths) {
    const uniform = seededUniform(o.seed + length);
    const prompts = depths(o.depthCount).map((d) => buildPasskeyPrompt(engine.model.tokenizer, o.filler, length, d, uniform));
    const run = (policy: PolicyName, budget: number | null, reference: readonly (readonly number[])[] | null) => {
      const label = `length ${length}: ${policyLabel(policy, budget)}`;
      o.onProgress?.(done, runs, label);
      const start = performance.now();
      const plan = { ...o.plan, policy, budgetTokens: budget ?? length + o.maxTokens };
      const batches = generate(
        engine,
        prompts.map((p) => request(p, o)),
        plan,
        o.batch,
      );
      const outputs = batches.flatMap((b) => b.outputs);
      const results = prompts.map(
        (p, i): PromptResult => ({
          depth: p.depth,
          passkey: p.passkey,
          promptTokens: p.ids.length,
          answer: outputs[i].text,
          correct: answerMatches(outputs[i].text, p.passkey),
          agreesWithFull: reference === null || sameTokens(outputs[i].tokenIds, reference[i]),
        }),
      );
      done++;
      const share = (f: (r: PromptResult) => boolean) => results.filter(f).length / results.length;
      const sum = (f: (b: BatchResult) => number) => batches.reduce((n, b) => n + f(b), 0);
      const row: PasskeyRow = {
        length,
        policy,
        budget,
        accuracy: share((r) => r.correct),
        agreement: share((r) => r.agreesWithFull),
        recallsPerStep:
          sum((b) => b.kv.recalls) /
          Math.max(
            1,
            sum((b) => b.timings.sequenceSteps),
          ),
        seconds: (performance.now() - start) / 1000,
        prompts: results,
      };
      rows.push(row);
      o.onRow?.(row);
      return outputs.map((out) => out.tokenIds);
    };
    const full = run('full', null, null);
    for (const policy of o.policies.filter((p) => p !== 'full')) {
      for (const budget of o.budgets) run(policy, budget, full);
    }
  }
  o.onProgress?.(done, runs, 'done');
  return rows;
}

/** One prompt as a generation request under the protocol. */
function request(p: PasskeyPrompt, o: PasskeyEvalOptions): GenerationRequest {
  return o.protocol === 'two-phase'
    ? { promptIds: p.contextIds, suffixIds: p.questionIds, maxTokens: o.maxTokens }
    : { promptIds: p.ids, maxTokens: o.maxTokens };
}

function generate(engine: LlamaEngine<ModelForward>, requests: readonly GenerationRequest[], plan: CachePlan, batch: number): BatchResult[] {
  const results: BatchResult[] = [];
  for (let i = 0; i < requests.length; i += batch) results.push(generateBatch(engine, requests.slice(i, i + batch), plan));
  return results;
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
