import { fileURLToPath } from 'node:url';
import { CpuBackend } from '@arkvale/cpu-backend';
import type { Tensor } from '@arkvale/core';
import { LlamaEngine } from '@arkvale/model-llama';
import { describe, expect, it } from 'vitest';
import { overlapChecks, readGolden } from './model-checks.js';

const modelDir = fileURLToPath(new URL('../../../../models/tiny-retrieval', import.meta.url));

/** The CPU backend keeping a wrong token for the next step: every held token becomes 0. */
class WrongFeedBackend extends CpuBackend {
  override copyInto(dst: Tensor, src: Tensor): void {
    super.copyInto(dst, this.fromArray(new Int32Array(src.shape[0]), [...src.shape], 'i32'));
  }
}

/** The CPU backend narrowing held tokens wrongly (the rows left when a request ends): each gathered token becomes 0. */
class WrongNarrowingBackend extends CpuBackend {
  override gatherRows(t: Tensor, indices: Tensor): Tensor {
    if (t.dtype !== 'i32' || t.shape.length !== 1) return super.gatherRows(t, indices);
    return this.fromArray(new Int32Array(indices.shape[0]), [indices.shape[0]], 'i32');
  }
}

/**
 * The overlapped-steps check of `arkvale selftest`, run with the CPU backend standing in
 * for the GPU: it passes, so a failure on a GPU is the CUDA backend's; and it fails when
 * the tokens a step keeps for the next are wrong.
 */
describe('the overlapped-steps check of the self-test', () => {
  const cases = readGolden(`${modelDir}/golden.json`).slice(0, 2);

  it('passes on the CPU', async () => {
    const results = overlapChecks(await LlamaEngine.load(modelDir, new CpuBackend()), cases, 'cpu');
    expect(results).toHaveLength(1);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  }, 60_000);

  it('fails when the held tokens are wrong', async () => {
    const results = overlapChecks(await LlamaEngine.load(modelDir, new WrongFeedBackend()), cases, 'cpu');
    expect(results.filter((r) => !r.ok)).toHaveLength(1);
  }, 60_000);

  it('fails when the held tokens are narrowed wrongly after a request ends (the passkey, by end of sequence)', async () => {
    const results = overlapChecks(await LlamaEngine.load(modelDir, new WrongNarrowingBackend()), cases, 'cpu');
    expect(results.filter((r) => !r.ok)).toHaveLength(1);
  }, 60_000);
});
