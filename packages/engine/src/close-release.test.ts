import { CpuBackend } from '@arkvale/cpu-backend';
import type { DigestStorage, KvStorage, Tensor } from '@arkvale/core';
import { describe, expect, it } from 'vitest';
import type { LlamaForward } from '@arkvale/model-llama';
import { LocalEngine } from './local-engine.js';
import { MODEL_DIR } from './test-support/model.js';

/** The CPU backend noting what is given back to it. */
class NotingBackend extends CpuBackend {
  readonly disposed = new Set<Tensor>();
  readonly freed: (KvStorage | DigestStorage)[] = [];
  released = 0;
  override dispose(t: Tensor): void {
    this.disposed.add(t);
    super.dispose(t);
  }
  override freeStorage(s: KvStorage | DigestStorage): void {
    this.freed.push(s);
    super.freeStorage(s);
  }
  releaseCached(): void {
    this.released++;
  }
}

describe('closing an engine', () => {
  it('gives the weights, every pool of every plan and the cached memory back to the backend, so another model can load', async () => {
    const backend = new NotingBackend();
    const engine = await LocalEngine.load({ modelDir: MODEL_DIR, backend, pageSize: 8, budgetTokens: 32 });
    // biome-ignore lint/complexity/useLiteralKeys: the core's forward pass is private; the test reads its weights.
    const w = (engine.core['forward'] as LlamaForward).weights;
    // Two plans share one store: it is freed once.
    for await (const _ of engine.submit({ prompt: 'The pass key is 4242.', maxTokens: 3, kvBudget: 64 })) {
    }
    for await (const _ of engine.submit({ prompt: 'The pass key is 4242.', maxTokens: 3 })) {
    }
    await engine.close();
    const weights = [w.embedTokens, w.norm, ...w.layers.flatMap((l) => [l.inputNorm, l.qkv, l.o, l.postNorm, l.gateUp, l.down])];
    expect(weights.filter((t) => !backend.disposed.has(t))).toEqual([]);
    // Device pages, host pages and digests.
    expect(backend.freed).toHaveLength(3);
    expect(backend.released).toBe(1);
  });
});
