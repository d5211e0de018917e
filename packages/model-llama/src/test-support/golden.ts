import { expect } from 'vitest';
import type { LlamaEngine } from '../engine.js';

/** One case of a golden.json (Hugging Face transformers, float32). */
export interface GoldenCase {
  readonly name: string;
  readonly ids: number[];
  readonly greedy: number[];
  readonly last_logits_top10: { readonly ids: number[]; readonly values: number[] };
}

/** Greedy tokens and last-prompt-position logits of a Full cache over `ids`. */
export function greedyRun(engine: LlamaEngine, ids: readonly number[], steps: number): { tokens: number[]; logits: Float32Array[] } {
  const cache = engine.createCache({ policy: 'full', pageSize: 16 }, ids.length + steps);
  const id = cache.admit(ids.length);
  const read = (t: ReturnType<typeof engine.forward.prefill>) => engine.backend.readSync(t) as Float32Array;
  let logits = read(engine.forward.prefill(cache, [{ id, tokens: ids }]));
  const tokens: number[] = [];
  const all = [logits];
  for (let i = 0; i < steps; i++) {
    const next = logits.indexOf(Math.max(...logits));
    tokens.push(next);
    if (i + 1 < steps) {
      logits = read(engine.forward.decode(cache, [id], [next]));
      all.push(logits);
    }
  }
  cache.free(id);
  return { tokens, logits: all };
}

/** The golden greedy tokens exactly, and the golden top-10 logits of the last prompt position to 1e-3 (relative). */
export function expectMatchesGolden(engine: LlamaEngine, c: GoldenCase): void {
  const { tokens, logits } = greedyRun(engine, c.ids, c.greedy.length);
  const top = c.last_logits_top10;
  top.ids.forEach((tokenId, i) => {
    expect(Math.abs(logits[0][tokenId] - top.values[i])).toBeLessThanOrEqual(1e-3 * Math.abs(top.values[i]));
  });
  // The golden top-10 are our top-10 too (ties within 1e-3 may swap order).
  const ours = [...logits[0].keys()].sort((a, b) => logits[0][b] - logits[0][a]).slice(0, 10);
  expect(new Set(ours)).toEqual(new Set(top.ids));
  expect(tokens).toEqual(c.greedy);
}
