import { expect } from 'vitest';
import { checkConsistency } from '../manager/consistency.js';
import type { Command } from './commands.js';
import { type CacheHarness, onBoth } from './harness.js';

/**
 * Runs random commands on two harnesses at once (admit, decode steps, fork, free), each
 * result compared; after every command, the same sequences, each layer's pages as
 * `KvCache.view` shows them and the same statistics, and `first` consistent and holding
 * the data it was given. Returns the decode steps that ran on both.
 */
export function runOnBoth(first: CacheHarness, second: CacheHarness, commands: readonly Command[]): number {
  const both = onBoth(first, second);
  const live = () => first.cache.sequenceIds;
  let steps = 0;
  for (const c of commands) {
    if (c.op === 'admit') {
      const [a, b] = both((h) => h.admit(c.length));
      expect(a instanceof Error).toBe(b instanceof Error);
    } else if (live().length === 0) continue;
    else if (c.op === 'step') {
      const ids = [...new Set(c.pick.map((i) => live()[i % live().length]))];
      for (let i = 0; i < c.times; i++) {
        const [a, b] = both((h) => h.step(ids));
        expect(a instanceof Error).toBe(b instanceof Error);
        if (!(a instanceof Error)) {
          expect(a).toEqual(b);
          steps++;
        }
      }
    } else {
      const id = live()[c.pick % live().length];
      both((h) => (c.op === 'fork' ? h.fork(id) : h.free(id)));
    }
    expect(first.cache.sequenceIds).toEqual(second.cache.sequenceIds);
    for (const id of live()) {
      for (let l = 0; l < first.geometry.numLayers; l++) expect(first.cache.view(id, l)).toEqual(second.cache.view(id, l));
    }
    expect(first.cache.stats()).toEqual(second.cache.stats());
    checkConsistency(first.cache);
    first.checkData();
  }
  return steps;
}
