import { CpuBackend } from '@arkvale/cpu-backend';
import type { Tensor } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import { LocalEngine } from './local-engine.js';
import { MODEL_DIR } from './test-support/model.js';

/**
 * The CPU backend declaring padded products, as the CUDA backend does (with 4 rows
 * here, below the CPU's kernel switch at 16, so numbers stay comparable), and noting the
 * rows of every product with the first layer's q/k/v weight.
 */
class PaddedBackend extends CpuBackend {
  override readonly invariantProducts = { rows: 4, pad: true };
  readonly rows: number[] = [];
  qkv: Tensor | null = null;
  override matmul(x: Tensor, w: Tensor): Tensor {
    if (w === this.qkv) this.rows.push(x.shape[0]);
    return super.matmul(x, w);
  }
}

/** The same, padding its products with NaN rows (Backend.padRows): a row's product must not depend on them. */
class NanPaddedBackend extends PaddedBackend {
  padded = 0;
  padRows(x: Tensor, rows: number): Tensor {
    if (rows > x.shape[0]) this.padded++;
    const values = this.readSync(x) as Float32Array;
    const out = new Float32Array((rows / x.shape[0]) * values.length).fill(Number.NaN);
    out.set(values);
    return this.fromArray(out, [rows, ...x.shape.slice(1)]);
  }
}

async function tokens(engine: LocalEngine, prompt: string, sampling: { temperature: number; seed?: number } = { temperature: 0 }): Promise<number[]> {
  const ids: number[] = [];
  for await (const ev of engine.submit({ prompt, maxTokens: 12, ...sampling, ignoreEos: true, cachePrefix: false })) {
    if (ev.type === 'token') ids.push(ev.tokenId);
  }
  return ids;
}

describe('padded products (batch invariance on a backend that picks kernels by shape)', () => {
  it('gives the same tokens when the padding rows hold NaN (Backend.padRows) as when they hold zeros', async () => {
    const options = { modelDir: MODEL_DIR, pageSize: 8, budgetTokens: 32, chunkTokens: 12 };
    const nanBackend = new NanPaddedBackend();
    const nan = await LocalEngine.load({ ...options, backend: nanBackend });
    const zeros = await LocalEngine.load({ ...options, backend: new PaddedBackend() });
    try {
      const prompts = ['The old farmer painted the barn', 'Once upon a time in a small village', 'A B C D E F G'];
      const all = (engine: LocalEngine) => Promise.all(prompts.map((p) => tokens(engine, p)));
      expect(await all(nan)).toEqual(await all(zeros));
      expect(nanBackend.padded).toBeGreaterThan(10);
    } finally {
      await nan.close();
      await zeros.close();
    }
  });

  it('runs every decode product at the block rows and every chunk at the chunk rows, with each request its tokens alone', async () => {
    const backend = new PaddedBackend();
    const engine = await LocalEngine.load({ modelDir: MODEL_DIR, backend, pageSize: 8, budgetTokens: 32, chunkTokens: 12 });
    try {
      backend.qkv = (engine as unknown as { core: { forward: { weights: { layers: { qkv: Tensor }[] } } } }).core.forward.weights.layers[0].qkv;
      const prompts = ['The old farmer painted the barn', 'Once upon a time in a small village', 'The pass key is 4242.', 'A B C D E F G', 'Red green blue'];
      const alone = [];
      for (const p of prompts) alone.push(await tokens(engine, p));
      // Sampled too (temperature 1, a seed each): a draw near a boundary of the distribution changes with the last bits of the logits.
      const sampled = (p: string, i: number) => tokens(engine, p, { temperature: 1, seed: 100 + i });
      const sampledAlone = [];
      for (const [i, p] of prompts.entries()) sampledAlone.push(await sampled(p, i));
      backend.rows.length = 0;
      expect(await Promise.all(prompts.map((p) => tokens(engine, p)))).toEqual(alone);
      expect(await Promise.all(prompts.map((p, i) => sampled(p, i)))).toEqual(sampledAlone);
      // Five decoding rows are two blocks of 4 rows (the second padded); chunks of up to 12 rows run at 12.
      expect(new Set(backend.rows)).toEqual(new Set([4, 12]));
    } finally {
      await engine.close();
    }
  });
});
