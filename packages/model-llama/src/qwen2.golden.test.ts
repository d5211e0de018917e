import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import golden from '../../../models/tiny-qwen2/golden.json' with { type: 'json' };
import { LlamaEngine } from './engine.js';
import { expectMatchesGolden } from './test-support/golden.js';

const modelDir = fileURLToPath(new URL('../../../models/tiny-qwen2', import.meta.url));

/**
 * The tiny Qwen2 checkpoint (q/k/v biases, tied embeddings, RoPE theta 1e6, GQA),
 * saved by transformers' own code with its golden outputs
 * (tools/peers/make_qwen2_fixture.py): the reference and CPU backends reproduce
 * every case, greedy tokens exactly and the top-10 logits to 1e-3.
 */
describe('Qwen2 forward vs models/tiny-qwen2/golden.json (transformers)', async () => {
  const engines = { reference: await LlamaEngine.load(modelDir, new ReferenceBackend()), cpu: await LlamaEngine.load(modelDir, new CpuBackend()) };
  it.each((['reference', 'cpu'] as const).flatMap((backend) => golden.cases.map((c) => [backend, c.name, c] as const)))(
    'the %s backend reproduces %s',
    (backend, _name, c) => expectMatchesGolden(engines[backend], c),
    30_000,
  );
});
