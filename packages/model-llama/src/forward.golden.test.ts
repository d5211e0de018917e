import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { LlamaEngine } from './engine.js';
import { expectMatchesGolden, greedyRun } from './test-support/golden.js';

const modelDir = fileURLToPath(new URL('../../../models/tiny-retrieval', import.meta.url));

/**
 * The chain of oracles, anchored on Hugging Face transformers (golden.json, float32):
 *
 * - the reference backend (plain TypeScript, the oracle every other backend is checked
 *   against) reproduces the short golden case in full, and on prefixes of the long
 *   cases agrees with the CPU backend logit for logit;
 * - the CPU backend (checked op by op against the reference in its own package)
 *   reproduces every golden case in full: greedy tokens exactly, top-10 logits to 1e-3.
 *
 * The reference forward pass over thousands of tokens takes minutes on a slow 2-core
 * machine, so the long cases run in full on the CPU backend only.
 */

/** ||a - b|| / ||b|| */
function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe('LLaMA forward vs golden.json', async () => {
  const reference = await LlamaEngine.load(modelDir, new ReferenceBackend());
  const cpu = await LlamaEngine.load(modelDir, new CpuBackend());
  const short = golden.cases.find((c) => c.name === 'short')!;
  const long = golden.cases.filter((c) => c !== short);

  it('the reference backend reproduces the short case: greedy tokens and top-10 logits', () => {
    expectMatchesGolden(reference, short);
  }, 60_000);

  it.each(golden.cases.map((c) => [c.name, c] as const))(
    'the CPU backend reproduces %s in full',
    (_name, c) => {
      expectMatchesGolden(cpu, c);
    },
    60_000,
  );

  // A prefix of a few hundred tokens keeps the reference well inside its timeout.
  const PREFIX = 192;
  it.each(long.map((c) => [c.name, c] as const))(
    `the reference and CPU backends agree on the first ${PREFIX} tokens of %s`,
    (_name, c) => {
      const ids = c.ids.slice(0, PREFIX);
      const ref = greedyRun(reference, ids, 4);
      const ours = greedyRun(cpu, ids, 4);
      expect(ours.tokens).toEqual(ref.tokens);
      ref.logits.forEach((l, i) => expect(relativeError(ours.logits[i], l)).toBeLessThan(1e-4));
      // About 18 s beside the other packages on 2 cores: the limit keeps 4x over it.
    },
    120_000,
  );
});
