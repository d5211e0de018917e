import { describe, expect, it } from 'vitest';
import type { PolicyName } from '../config.js';
import { KvCache } from '../manager/kv-cache.js';
import { checkConsistency } from '../manager/consistency.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { randomArray, rng } from '../test-support/random.js';
import { h2oPolicy, streamingLlmPolicy, tovaPolicy } from './token-policies.js';

function cells(positions: number[], scores: number[], capacity: number) {
  return { positions: Int32Array.from(positions), scores: Float32Array.from(scores), filled: positions.length, capacity };
}

describe('StreamingLLM', () => {
  const p = streamingLlmPolicy(4);
  it('keeps the sink tokens and the most recent ones', () => {
    expect(p.prefillKeep(12, 7, null)).toEqual([0, 1, 2, 3, 9, 10, 11]);
    expect(p.prefillKeep(5, 7, null)).toEqual([0, 1, 2, 3, 4]);
  });
  it('evicts the oldest token that is not a sink', () => {
    // Cells hold positions 0..3 (sinks), 9, 12, 10, 11: position 9 sits in cell 4.
    expect(p.victim(cells([0, 1, 2, 3, 9, 12, 10, 11], [0, 0, 0, 0, 0, 0, 0, 0], 7))).toBe(4);
  });
});

describe('H2O', () => {
  const p = h2oPolicy();
  it('keeps the recent half and the heavy hitters of the rest', () => {
    // capacity 4: the 2 most recent (8, 9) and the 2 heaviest of 0..7 (positions 1 and 5).
    const scores = [0.1, 0.9, 0.2, 0.1, 0.3, 0.8, 0.1, 0.1, 0, 0];
    expect(p.prefillKeep(10, 4, scores)).toEqual([1, 5, 8, 9]);
  });
  it('evicts the lowest accumulated score outside the recent half', () => {
    // capacity 4 (+1 incoming): recent half = the 2 newest positions (11, 12) are safe
    // even though position 12 has the lowest score.
    expect(p.victim(cells([1, 5, 11, 12, 9], [0.9, 0.4, 0.5, 0.0, 0.6], 4))).toBe(1);
  });
});

describe('TOVA', () => {
  const p = tovaPolicy();
  it('keeps what the last prompt query attends most', () => {
    expect(p.prefillKeep(6, 3, [0.05, 0.4, 0.1, 0.3, 0.05, 0.2])).toEqual([1, 3, 5]);
  });
  it('evicts the lowest current attention, the newest token included', () => {
    expect(p.victim(cells([1, 3, 5, 6], [0.3, 0.4, 0.2, 0.1], 3))).toBe(3);
  });
});

describe.each<PolicyName>(['streaming-llm', 'h2o', 'tova'])('%s in the page manager', (policy) => {
  it('holds at most the budget and never brings an evicted token back', () => {
    const backend = new ReferenceBackend();
    const pageSize = 4;
    const cache = new KvCache({
      geometry: { numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 8, pageSize, bytesPerElement: 4 },
      options: { policy, budgetTokens: 16, fullLayers: 0, devicePages: 64, sinkTokens: 2 },
      backend,
    });
    const next = rng(7);
    const t = (rows: number, heads: number) => backend.fromArray(randomArray(next, rows * heads * 8, 3), [rows, heads, 8]);
    const id = cache.admit(30);
    for (let l = 0; l < 2; l++) cache.prefillLayer(id, l, t(30, 2), t(30, 1), t(30, 1), 0.35);
    const gone = new Set<number>();
    let previous = new Set<number>();
    for (let s = 0; s < 40; s++) {
      const step = cache.beginStep([id]);
      for (let l = 0; l < 2; l++) cache.decodeLayer(step, l, t(1, 2), t(1, 1), t(1, 1), 0.35);
      const view = cache.view(id, 1);
      if (view.kind !== 'token') throw new Error('expected a token-level layer');
      const now = new Set(view.positions);
      expect(view.positions.length).toBe(15); // budget minus the cell kept for the next token
      expect(view.slots.length).toBeLessThanOrEqual(4);
      for (const p of previous) if (!now.has(p)) gone.add(p);
      for (const p of now) expect(gone.has(p)).toBe(false);
      expect(now.has(30 + s)).toBe(policy !== 'tova' || now.has(30 + s)); // newest kept except by TOVA's choice
      previous = now;
      checkConsistency(cache);
    }
    expect(gone.size).toBeGreaterThan(30);
    if (policy === 'streaming-llm') expect([...previous].slice(0, 2)).toEqual([0, 1]);
    cache.free(id);
    expect(cache.store.devicePool.used).toBe(0);
  });
});
