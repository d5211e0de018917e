import type { PolicyName } from '@arkvale/core';
import type { CachePlan, GenerationOutput, LlamaEngine } from '@arkvale/model-llama';
import { seededUniform } from '@arkvale/model-llama';
import type { PasskeyPrompt } from './prompt.js';
import { answerMatches, buildPasskeyPrompt, depths } from './prompt.js';

export interface PasskeyEvalOptions {
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
  readonly seconds: number;
  readonly prompts: PromptResult[];
}

/** `arkvale @ 256`, or `full` for a policy without a budget. */
export function policyLabel(policy: PolicyName, budget: number | null): string {
  return budget === null ? policy : `${policy} @ ${budget}`;
}

/** The paper's passkey protocol: the same prompts for every policy, exact match, agreement with Full. */
export function evaluatePasskey(engine: LlamaEngine, o: PasskeyEvalOptions): PasskeyRow[] {
  const runs = o.lengths.length * (1 + o.policies.filter((p) => p !== 'full').length * o.budgets.length);
  let done = 0;
  const rows: PasskeyRow[] = [];
  for (const length of o.lengths) {
    const uniform = seededUniform(o.seed + length);
    const prompts = depths(o.depthCount).map((d) => buildPasskeyPrompt(engine.model.tokenizer, o.filler, length, d, uniform));
    const run = (policy: PolicyName, budget: number | null, reference: GenerationOutput[] | null) => {
      const label = `length ${length}: ${policyLabel(policy, budget)}`;
      o.onProgress?.(done, runs, label);
      const start = performance.now();
      const outputs = generate(engine, prompts, { ...o.plan, policy, budgetTokens: budget ?? length + o.maxTokens }, o.batch, o.maxTokens);
      const results = prompts.map((p, i): PromptResult => ({
        depth: p.depth,
        passkey: p.passkey,
        promptTokens: p.ids.length,
        answer: outputs[i].text,
        correct: answerMatches(outputs[i].text, p.passkey),
        agreesWithFull: reference === null || sameTokens(outputs[i].tokenIds, reference[i].tokenIds),
      }));
      done++;
      const share = (f: (r: PromptResult) => boolean) => results.filter(f).length / results.length;
      const row: PasskeyRow = {
        length,
        policy,
        budget,
        accuracy: share((r) => r.correct),
        agreement: share((r) => r.agreesWithFull),
        seconds: (performance.now() - start) / 1000,
        prompts: results,
      };
      rows.push(row);
      return outputs;
    };
    const full = run('full', null, null);
    for (const policy of o.policies.filter((p) => p !== 'full')) {
      for (const budget of o.budgets) run(policy, budget, full);
    }
  }
  o.onProgress?.(done, runs, 'done');
  return rows;
}

function generate(engine: LlamaEngine, prompts: PasskeyPrompt[], plan: CachePlan, batch: number, maxTokens: number): GenerationOutput[] {
  const outputs: GenerationOutput[] = [];
  for (let i = 0; i < prompts.length; i += batch) {
    const chunk = prompts.slice(i, i + batch).map((p) => ({ promptIds: p.ids, maxTokens }));
    outputs.push(...engine.generate(chunk, plan).outputs);
  }
  return outputs;
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
