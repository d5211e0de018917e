/**
 * Two passkey runs side by side (`arkvale eval compare`): which answers changed between
 * a baseline's JSON and a new one, row by row. A change of backend, dtype or kernel can
 * move a near-tie in the model or in a page ranking; this says where it did.
 */
import { invalidArgument } from '@arkvale/core';
import { policyLabel, type PasskeyRow, type PromptResult } from './evaluate.js';

/** What `eval passkey --json` writes (the fields the comparison reads). */
export interface PasskeyRun {
  readonly backend?: string;
  /** How the run's KV pages stored K and V (absent in runs from before fp8 pages: the backend's dtype). */
  readonly kvDtype?: string;
  readonly rows: readonly PasskeyRow[];
}

export interface AnswerChange {
  readonly depth: number;
  readonly passkey: string;
  readonly before: string;
  readonly after: string;
}

export interface RowComparison {
  readonly label: string;
  readonly length: number;
  readonly accuracyBefore: number;
  readonly accuracyAfter: number;
  readonly prompts: number;
  readonly same: number;
  readonly changes: readonly AnswerChange[];
}

export interface PasskeyComparison {
  readonly rows: readonly RowComparison[];
  /** Rows (policy @ budget at a length) that only one run has. */
  readonly onlyBefore: readonly string[];
  readonly onlyAfter: readonly string[];
  readonly prompts: number;
  readonly same: number;
}

const rowKey = (r: PasskeyRow) => `${policyLabel(r.policy, r.budget)} at ${r.length} tokens`;

/** Parses a run's JSON text; `name` (its file) goes into every error. */
export function parsePasskeyRun(text: string, name: string): PasskeyRun {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${name} is not JSON: ${(e as Error).message}`);
  }
  const rows = (value as { rows?: unknown } | null)?.rows;
  if (!Array.isArray(rows)) throw invalidArgument(`${name} has no "rows" array: is it the --json output of arkvale eval passkey?`);
  rows.forEach((r: Partial<PasskeyRow>, i) => {
    if (typeof r?.length !== 'number' || typeof r.policy !== 'string' || !Array.isArray(r.prompts)) {
      throw invalidArgument(`${name}: row ${i} lacks length, policy or prompts`);
    }
  });
  return value as PasskeyRun;
}

/** The prompts of two runs of the same row, matched by depth; the pass keys must agree (same seed and filler). */
function compareRow(before: PasskeyRow, after: PasskeyRow): RowComparison {
  const label = policyLabel(before.policy, before.budget);
  const byDepth = new Map<number, PromptResult>(after.prompts.map((p) => [p.depth, p]));
  const changes: AnswerChange[] = [];
  let same = 0;
  for (const p of before.prompts) {
    const q = byDepth.get(p.depth);
    if (!q) throw invalidArgument(`${label} at ${before.length} tokens: the second run has no prompt at depth ${p.depth}`);
    if (q.passkey !== p.passkey) {
      throw invalidArgument(
        `${label} at ${before.length} tokens, depth ${p.depth}: pass key ${p.passkey} against ${q.passkey} (the runs used different seeds or filler)`,
      );
    }
    if (q.answer === p.answer) same++;
    else changes.push({ depth: p.depth, passkey: p.passkey, before: p.answer, after: q.answer });
  }
  return { label, length: before.length, accuracyBefore: before.accuracy, accuracyAfter: after.accuracy, prompts: before.prompts.length, same, changes };
}

export function comparePasskeyRuns(before: PasskeyRun, after: PasskeyRun): PasskeyComparison {
  const afterRows = new Map(after.rows.map((r) => [rowKey(r), r]));
  const beforeKeys = new Set(before.rows.map(rowKey));
  const rows = before.rows.filter((r) => afterRows.has(rowKey(r))).map((r) => compareRow(r, afterRows.get(rowKey(r))!));
  return {
    rows,
    onlyBefore: before.rows.map(rowKey).filter((k) => !afterRows.has(k)),
    onlyAfter: after.rows.map(rowKey).filter((k) => !beforeKeys.has(k)),
    prompts: rows.reduce((n, r) => n + r.prompts, 0),
    same: rows.reduce((n, r) => n + r.same, 0),
  };
}
