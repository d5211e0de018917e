import { afterAll, describe, expect, it } from 'vitest';
import { type Backend, type Communicator, InProcessGroup, KvCache, ReferenceBackend, type Tensor } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import golden from '../../../models/tiny-retrieval/golden.json' with { type: 'json' };
import { parseLlamaConfig } from './config.js';
import type { CachePlan } from './engine.js';
import { LlamaEngine } from './engine.js';
import { LlamaForward } from './forward.js';
import { kvGeometry } from './model-dir.js';
import {
  expectArkvaleError,
  f32Bytes,
  removeTmpDirs,
  smallConfigJson,
  syntheticLlamaTensors,
  TINY_MODEL_DIR,
  writeSyntheticModel,
} from './test-support/fixtures.js';
import { shardLlamaWeights, tensorParallelConfig, tensorParallelLayout } from './shard.js';
import { randomLlamaWeights } from './shapes.js';
import { TensorParallelLlama } from './tensor-parallel.js';
import { loadLlamaWeights, type LlamaWeights } from './weights.js';

const values = (b: Backend, t: Tensor) => Array.from(b.readSync(t));
/** The largest difference over the largest magnitude of `expected`. */
const relative = (got: ArrayLike<number>, expected: ArrayLike<number>) => {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
};
const argmax = (xs: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
};
const concat = (parts: readonly Float32Array[]) => {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
/** Element for element (NaN-free weights). */
const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => x === b[i]);

describe('tensor-parallel layout and sharding', () => {
  const tiny = parseLlamaConfig(smallConfigJson({ num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 16, vocab_size: 12 }), 'tiny.json');

  it('splits query heads, MLP columns and the vocabulary evenly, and KV heads evenly or replicated', () => {
    expect(tensorParallelLayout(tiny, 1, 2)).toEqual({
      rank: 1,
      size: 2,
      qHeads: { start: 2, count: 2 },
      kvHeads: { start: 1, count: 1 },
      mlp: { start: 8, count: 8 },
      vocab: { start: 6, count: 6 },
    });
    // Four ranks and two KV heads: ranks 0 and 1 hold KV head 0 (their query heads 0 and 1 read it), ranks 2 and 3 head 1.
    expect([0, 1, 2, 3].map((r) => tensorParallelLayout(tiny, r, 4).kvHeads.start)).toEqual([0, 0, 1, 1]);
    expect([0, 1, 2, 3].map((r) => tensorParallelLayout(tiny, r, 4).qHeads)).toEqual([0, 1, 2, 3].map((start) => ({ start, count: 1 })));
    expect(tensorParallelConfig(tiny, 4)).toMatchObject({ numHeads: 1, numKvHeads: 1, intermediateSize: 4, vocabSize: 12, hiddenSize: 8 });
    expect(tensorParallelConfig(tiny, 1)).toEqual(tiny);
  });

  it('refuses sizes that split a head, a KV head unevenly, the MLP or the vocabulary', () => {
    expectArkvaleError(
      () => tensorParallelLayout(tiny, 0, 3),
      'UNSUPPORTED_MODEL',
      'tensor-parallel size 3 does not divide the 4 query heads (num_attention_heads) of tiny.json',
    );
    expectArkvaleError(() => tensorParallelLayout(tiny, 0, 8), 'UNSUPPORTED_MODEL', 'the 4 query heads');
    const six = parseLlamaConfig(smallConfigJson({ num_attention_heads: 6, num_key_value_heads: 3, intermediate_size: 12, vocab_size: 12 }), 'six.json');
    expectArkvaleError(() => tensorParallelLayout(six, 0, 2), 'UNSUPPORTED_MODEL', 'does not divide the 3 KV heads (num_key_value_heads)');
    // Six ranks: two per KV head.
    expect([0, 1, 2, 3, 4, 5].map((r) => tensorParallelLayout(six, r, 6).kvHeads.start)).toEqual([0, 0, 1, 1, 2, 2]);
    const mlp = parseLlamaConfig(smallConfigJson({ num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 18 }), 'mlp.json');
    expectArkvaleError(() => tensorParallelLayout(mlp, 0, 4), 'UNSUPPORTED_MODEL', 'intermediate_size 18');
    const vocab = parseLlamaConfig(smallConfigJson({ num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 14 }), 'vocab.json');
    expectArkvaleError(() => tensorParallelLayout(vocab, 0, 4), 'UNSUPPORTED_MODEL', 'vocab_size 14');
    expectArkvaleError(() => tensorParallelLayout(tiny, 2, 2), 'INVALID_ARGUMENT', 'rank 2 is outside');
    expectArkvaleError(() => tensorParallelLayout(tiny, 0, 0), 'INVALID_ARGUMENT', 'positive integer');
  });
});

describe('tensor parallelism on the bundled model (CPU, in-process ranks)', async () => {
  const backend = new CpuBackend();
  const engine = await LlamaEngine.load(TINY_MODEL_DIR, backend);
  const { forward } = engine;
  const config = engine.model.config;
  const { hiddenSize: H, numHeads: Hq, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = config;
  // Every rank on the one CPU backend (its tensors are host arrays; each rank has its own caches).
  const models = new Map(
    [2, 4].map((size) => [size, TensorParallelLlama.fromWeights(config, forward.weights, backend, new InProcessGroup(Array(size).fill(backend)))]),
  );
  const model = (size: number) => models.get(size)!;

  it('shards every weight so that the shards, put together, are the weights', () => {
    const w = forward.weights;
    const read = (t: Tensor) => backend.readSync(t) as Float32Array;
    const rows = (t: Tensor, from: number, count: number) => read(t).subarray(from * t.shape[1], (from + count) * t.shape[1]);
    const cols = (t: Tensor, from: number, count: number) => {
      const all = read(t);
      const c = t.shape[1];
      return concat(Array.from({ length: t.shape[0] }, (_, r) => all.subarray(r * c + from, r * c + from + count)));
    };
    for (const size of [2, 4]) {
      const shards = model(size).ranks.map((f) => f.weights);
      const kvPer = Math.max(1, Hkv / size);
      const byRank = (f: (s: LlamaWeights, r: number) => Float32Array) => concat(shards.map(f));
      shards.forEach((s, r) => {
        expect(s.shard).toEqual({ rank: r, size, vocabStart: (r * V) / size, vocabCount: V / size });
        expect(s.layers[0].qkv.shape).toEqual([(Hq / size + 2 * kvPer) * D, H]);
        expect(s.layers[0].o.shape).toEqual([H, (Hq / size) * D]);
        expect(s.layers[0].gateUp.shape).toEqual([(2 * I) / size, H]);
        expect(s.layers[0].down.shape).toEqual([H, I / size]);
        expect(s.embedTokens.shape).toEqual([V / size + 1, H]);
        expect(s.lmHead.shape).toEqual([V / size, H]);
        // The embedding's last row, which other ranks' tokens read, is zero.
        expect(rows(s.embedTokens, V / size, 1).every((x) => x === 0)).toBe(true);
        expect(same(read(s.norm), read(w.norm))).toBe(true);
      });
      for (const l of [0, 3]) {
        const whole = w.layers[l];
        const layer = (s: LlamaWeights) => s.layers[l];
        expect(
          same(
            byRank((s) => read(layer(s).inputNorm)),
            concat(shards.map(() => read(whole.inputNorm))),
          ),
        ).toBe(true);
        // q: the ranks' rows in rank order are q_proj's rows.
        expect(
          same(
            byRank((s) => rows(layer(s).qkv, 0, (Hq / size) * D)),
            rows(whole.qkv, 0, Hq * D),
          ),
        ).toBe(true);
        // k and v: each KV head once (ranks that replicate a head hold the same rows).
        for (const [part, first] of [
          ['k', Hq * D],
          ['v', (Hq + Hkv) * D],
        ] as const) {
          const own = shards.map((s) => rows(layer(s).qkv, (Hq / size + (part === 'k' ? 0 : kvPer)) * D, kvPer * D));
          const distinct = own.filter((_, r) => r % Math.max(1, size / Hkv) === 0);
          expect(same(concat(distinct), rows(whole.qkv, first, Hkv * D)), part).toBe(true);
          if (size > Hkv) expect(same(own[1], own[0])).toBe(true);
        }
        // o_proj's columns, gate/up's rows in each half, down_proj's columns.
        const parts = (f: (r: number) => Float32Array) => concat(shards.map((_, r) => f(r)));
        expect(
          same(
            byRank((s) => read(layer(s).o)),
            parts((r) => cols(whole.o, (r * Hq * D) / size, (Hq * D) / size)),
          ),
        ).toBe(true);
        expect(
          same(
            byRank((s) => rows(layer(s).gateUp, 0, I / size)),
            rows(whole.gateUp, 0, I),
          ),
        ).toBe(true);
        expect(
          same(
            byRank((s) => rows(layer(s).gateUp, I / size, I / size)),
            rows(whole.gateUp, I, I),
          ),
        ).toBe(true);
        expect(
          same(
            byRank((s) => read(layer(s).down)),
            parts((r) => cols(whole.down, (r * I) / size, I / size)),
          ),
        ).toBe(true);
      }
      expect(
        same(
          byRank((s) => rows(s.embedTokens, 0, V / size)),
          read(w.embedTokens),
        ),
      ).toBe(true);
      expect(
        same(
          byRank((s) => read(s.lmHead)),
          read(w.lmHead),
        ),
      ).toBe(true);
    }
    expect(() => shardLlamaWeights(model(2).ranks[0].weights, config, 0, 2, backend)).toThrow(/already rank 0 of 2/);
  });

  it('loads the same shares from the checkpoint, tensor by tensor', async () => {
    const read = (t: Tensor) => backend.readSync(t) as Float32Array;
    for (const size of [2, 4]) {
      for (let r = 0; r < size; r++) {
        const loaded = await engine.model.loadWeights(backend, { shard: { rank: r, size } });
        const made = model(size).ranks[r].weights;
        expect(loaded.shard).toEqual(made.shard);
        const tensors = (w: LlamaWeights) => [
          w.embedTokens,
          w.norm,
          w.lmHead,
          ...w.layers.flatMap((l) => [l.inputNorm, l.qkv, l.o, l.postNorm, l.gateUp, l.down]),
        ];
        const a = tensors(loaded);
        const b = tensors(made);
        a.forEach((t, i) => {
          expect(t.shape, `tensor ${i}`).toEqual(b[i].shape);
          expect(same(read(t), read(b[i])), `tensor ${i}`).toBe(true);
        });
      }
    }
    await expect(engine.model.loadWeights(backend, { shard: { rank: 0, size: 3 } })).rejects.toThrow(/size 3 does not divide the 4 query heads/);
  });

  it("makes a rank's share of random weights in place: the values of the whole weights' share", () => {
    const read = (t: Tensor) => backend.readSync(t) as Float32Array;
    const tensors = (w: LlamaWeights) => [w.embedTokens, w.norm, w.lmHead, ...w.layers.flatMap((l) => [l.inputNorm, l.qkv, l.o, l.postNorm, l.gateUp, l.down])];
    const whole = randomLlamaWeights(config, backend, 7, { sharedEmbedding: 1 });
    for (const size of [2, 4]) {
      for (let r = 0; r < size; r++) {
        const made = randomLlamaWeights(config, backend, 7, { sharedEmbedding: 1, shard: { rank: r, size } });
        const cut = shardLlamaWeights(whole, config, r, size, backend);
        expect(made.shard).toEqual(cut.shard);
        const b = tensors(cut);
        tensors(made).forEach((t, i) => {
          expect(t.shape, `size ${size}, rank ${r}, tensor ${i}`).toEqual(b[i].shape);
          expect(same(read(t), read(b[i])), `size ${size}, rank ${r}, tensor ${i}`).toBe(true);
        });
      }
    }
  });

  it('gives each rank a cache of its own KV heads', () => {
    const plan: CachePlan = { policy: 'full', pageSize: 16 };
    for (const size of [2, 4]) {
      const caches = model(size).createCaches(plan, 64);
      expect(caches.map((c) => c.geometry)).toEqual(
        Array(size).fill(kvGeometry({ ...config, numHeads: Hq / size, numKvHeads: Math.max(1, Hkv / size) }, 16, 4)),
      );
      for (const c of caches) c.close();
    }
  });

  /** Greedy tokens and every step's logits, of one rank (size 1: `forward`) or of a tensor-parallel model. */
  function greedy(size: number, plan: CachePlan, prompt: readonly number[], steps: number): { tokens: number[]; logits: Float32Array[] } {
    const tp = size > 1 ? model(size) : null;
    const caches: KvCache[] = tp ? tp.createCaches(plan, prompt.length + steps) : [engine.createCache(plan, prompt.length + steps)];
    const id = tp ? tp.admit(caches, prompt.length) : caches[0].admit(prompt.length);
    const logits: Float32Array[] = [];
    const tokens: number[] = [];
    let out = tp ? tp.prefill(caches, [{ id, tokens: prompt }]) : forward.prefill(caches[0], [{ id, tokens: prompt }]);
    for (let step = 0; step < steps; step++) {
      logits.push(backend.readSync(out) as Float32Array);
      tokens.push(argmax(logits[step]));
      if (step + 1 < steps) out = tp ? tp.decode(caches, [id], [tokens[step]]) : forward.decode(caches[0], [id], [tokens[step]]);
    }
    for (const c of caches) {
      c.free(id);
      c.close();
    }
    return { tokens, logits };
  }

  it('Full: sizes 2 and 4 give the greedy tokens of size 1, and its logits within 1e-4', () => {
    const c = golden.cases[0];
    const plan: CachePlan = { policy: 'full', pageSize: 4 };
    const one = greedy(1, plan, c.ids, 24);
    expect(one.tokens).toEqual(c.greedy.slice(0, 24));
    for (const size of [2, 4]) {
      const tp = greedy(size, plan, c.ids, 24);
      expect(tp.tokens, `size ${size}`).toEqual(one.tokens);
      tp.logits.forEach((l, step) => expect(relative(l, one.logits[step]), `size ${size}, step ${step}`).toBeLessThan(1e-4));
    }
  });

  it('ArkVale, each rank selecting for its own heads: the passkey answer of size 1 at sizes 2 and 4', () => {
    const c = golden.cases[1];
    // 1007 prompt tokens, 16 pages of budget: every decode step selects.
    const plan: CachePlan = { policy: 'arkvale', pageSize: 16, budgetTokens: 256 };
    const one = greedy(1, plan, c.ids, 8);
    expect(one.tokens).toEqual(c.greedy);
    for (const size of [2, 4]) {
      const tp = greedy(size, plan, c.ids, 8);
      expect(tp.tokens, `size ${size}`).toEqual(one.tokens);
      // The prompt's logits come from full attention under every policy: the same as size 1's.
      expect(relative(tp.logits[0], one.logits[0])).toBeLessThan(1e-4);
    }
  });

  it('runs a batch of a prefill chunk and a decode step on every rank, as size 1 does', () => {
    const ids = golden.cases[0].ids;
    const plan: CachePlan = { policy: 'full', pageSize: 4 };
    const run = (size: number) => {
      const tp = size > 1 ? model(size) : null;
      const caches: KvCache[] = tp ? tp.createCaches(plan, 64, 2) : [engine.createCache(plan, 64, 2)];
      const admit = (n: number, chunked: boolean) => {
        const per = caches.map((cache) => (chunked ? cache.admitChunked(n) : cache.admit(n)));
        expect(new Set(per).size).toBe(1);
        return per[0];
      };
      const a = admit(4, false);
      if (tp) tp.prefill(caches, [{ id: a, tokens: ids.slice(0, 4) }]);
      else forward.prefill(caches[0], [{ id: a, tokens: ids.slice(0, 4) }]);
      const b = admit(ids.length, true);
      const batches = caches.map((cache, r) => {
        const step = cache.beginStep([a]);
        const chunk = cache.beginPrefillChunk(b, ids.length);
        const f = tp ? tp.ranks[r] : forward;
        return {
          segments: [
            {
              tokens: [ids[4]],
              positions: step.positions,
              attend: (l: number, q: Tensor, k: Tensor, v: Tensor) => cache.decodeLayer(step, l, q, k, v, f.scale),
            },
            {
              tokens: ids,
              positions: ids.map((_, i) => i),
              attend: (l: number, q: Tensor, k: Tensor, v: Tensor) => cache.prefillChunkLayer(chunk, l, q, k, v, f.scale),
            },
          ],
          blocks: [1, ids.length],
          logitRows: [0, ids.length],
        };
      });
      const logits = tp ? tp.forwardRanks(batches) : [forward.forwardRows(batches[0])];
      return logits.map((t) => backend.readSync(t));
    };
    const [one] = run(1);
    for (const size of [2, 4]) {
      const ranks = run(size);
      expect(ranks.length).toBe(size);
      // Every rank has the whole logits, the same values.
      for (const r of ranks) expect(r).toEqual(ranks[0]);
      expect(relative(ranks[0], one)).toBeLessThan(1e-4);
    }
  });

  it('a rank with a communicator of its own runs its pass alone (a group of one), and a shard without one is refused', () => {
    const ids = golden.cases[0].ids;
    const shard = shardLlamaWeights(forward.weights, config, 0, 1, backend);
    const echo: Communicator = {
      rank: 0,
      size: 1,
      allReduceSum: (t) => backend.fromArray(backend.readSync(t), t.shape),
      allGather: (t) => backend.fromArray(backend.readSync(t), t.shape),
    };
    const logitsOf = (f: LlamaForward) => {
      const cache = engine.createCache({ policy: 'full', pageSize: 4 }, 16);
      const id = cache.admit(ids.length);
      return backend.readSync(f.prefill(cache, [{ id, tokens: ids }]));
    };
    expect(logitsOf(new LlamaForward(config, shard, backend, forward.maxPositions, undefined, echo))).toEqual(logitsOf(forward));
    expect(() => logitsOf(new LlamaForward(config, shard, backend))).toThrow(/allReduceSum without a communicator/);
    expect(() => new LlamaForward(config, shard, backend, undefined, undefined, { ...echo, rank: 1, size: 2 })).toThrow(
      /rank 0 of 1 given a communicator of rank 1 of 2/,
    );
  });
});

describe('tensor parallelism of Qwen2 (q/k/v biases, tied embeddings)', () => {
  afterAll(() => removeTmpDirs());

  it('splits the biases with their heads and gives the logits of size 1', async () => {
    const json = smallConfigJson({
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      tie_word_embeddings: true,
      num_attention_heads: 4,
      num_key_value_heads: 2,
    });
    const config = parseLlamaConfig(json, 'qwen2 tp');
    const q = config.numHeads * config.headDim;
    const kv = config.numKvHeads * config.headDim;
    const bias = (name: string, n: number, seed: number) => ({
      name,
      dtype: 'F32',
      shape: [n],
      data: f32Bytes(Array.from({ length: n }, (_, i) => Math.sin(seed * 7 + i) * 0.8)),
    });
    const tensors = syntheticLlamaTensors(json, { lmHead: false });
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}.self_attn.`;
      tensors.push(bias(`${p}q_proj.bias`, q, 3 * l + 1), bias(`${p}k_proj.bias`, kv, 3 * l + 2), bias(`${p}v_proj.bias`, kv, 3 * l + 3));
    }
    const backend = new ReferenceBackend();
    const dir = writeSyntheticModel(json, tensors);
    const weights = await loadLlamaWeights(dir, config, backend);
    // Separate backends per rank, as with one GPU per rank.
    const ranks = [new ReferenceBackend(), new ReferenceBackend()];
    const tp = TensorParallelLlama.fromWeights(config, weights, backend, new InProcessGroup(ranks));
    const whole = values(backend, weights.layers[0].qkvBias!);
    const D = config.headDim;
    tp.ranks.forEach((f, r) => {
      const b = f.weights.layers[0].qkvBias!;
      expect(b.shape).toEqual([1, 2 * D + 2 * D]);
      // Its two query heads' biases, then its KV head's k bias and v bias.
      expect(values(ranks[r], b)).toEqual([
        ...whole.slice(r * 2 * D, (r + 1) * 2 * D),
        ...whole.slice(q + r * D, q + (r + 1) * D),
        ...whole.slice(q + kv + r * D, q + kv + (r + 1) * D),
      ]);
      expect(f.weights.tiedLmHead).toBe(false);
    });
    const tokens = [1, 5, 9, 3, 7, 11, 2, 4];
    const forward = new LlamaForward(config, weights, backend);
    const plan = { policy: 'full' as const, devicePages: 16 };
    const cache = new KvCache({ geometry: kvGeometry(config, 4, 4), options: plan, backend });
    const id = cache.admit(tokens.length);
    const one = backend.readSync(
      forward.forwardRows({
        segments: [{ tokens, positions: tokens.map((_, i) => i), attend: (l, q, k, v) => cache.prefillLayer(id, l, q, k, v, forward.scale) }],
        logitRows: tokens.map((_, i) => i),
      }),
    );
    const logitsOf = (model: TensorParallelLlama) => {
      const caches = model.createCaches({ policy: 'full', pageSize: 4 }, tokens.length);
      const tid = model.admit(caches, tokens.length);
      const [logits] = model.forwardRanks(
        caches.map((c) => ({
          segments: [
            {
              tokens,
              positions: tokens.map((_, i) => i),
              attend: (l: number, q: Tensor, k: Tensor, v: Tensor) => c.prefillLayer(tid, l, q, k, v, model.scale),
            },
          ],
          logitRows: tokens.map((_, i) => i),
        })),
      );
      return ranks[0].readSync(logits);
    };
    const sharded = logitsOf(tp);
    expect(relative(sharded, one)).toBeLessThan(1e-5);
    // Each rank's share read from the checkpoint: the same tensors (the tied LM head its embedding rows), the same logits.
    const loaded = await Promise.all(ranks.map((b, rank) => loadLlamaWeights(dir, config, b, { shard: { rank, size: 2 } })));
    loaded.forEach((w, r) => {
      const made = tp.ranks[r].weights;
      for (const [a, b] of [
        [w.layers[1].qkvBias!, made.layers[1].qkvBias!],
        [w.lmHead, made.lmHead],
        [w.embedTokens, made.embedTokens],
      ]) {
        expect(a.shape).toEqual(b.shape);
        expect(values(ranks[r], a)).toEqual(values(ranks[r], b));
      }
    });
    expect(logitsOf(TensorParallelLlama.fromShards(config, loaded, new InProcessGroup(ranks)))).toEqual(sharded);
    expect(() => TensorParallelLlama.fromShards(config, [loaded[1], loaded[0]], new InProcessGroup(ranks))).toThrow(
      /rank 0 of 2 was given weights of rank 1 of 2/,
    );
  });
});
