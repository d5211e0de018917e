import { describe, expect, it } from 'vitest';
import type { Tensor } from '../backend.js';
import type { CacheOptions, KvGeometry, PolicyName } from '../config.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { randomArray, rng } from '../test-support/random.js';
import { checkConsistency } from './consistency.js';
import { KvCache } from './kv-cache.js';

/*
 * The prefix cache against the same cache without it. K, V and q of a position are a
 * fixed function of (layer, position, token), as a model's are of the prefix, so a
 * prompt that starts from cached pages must attend, decode and keep pages exactly as
 * the one prefilled from scratch.
 */

const geometry: KvGeometry = { numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 8, pageSize: 4, bytesPerElement: 4 };
const backend = new ReferenceBackend();
const scale = 1 / Math.sqrt(geometry.headDim);
const PAGE_POLICIES: PolicyName[] = ['full', 'quest', 'arkvale'];

function options(policy: PolicyName, pages = 400): CacheOptions {
  return { policy, budgetTokens: 16, fullLayers: policy === 'arkvale' ? 1 : 0, devicePages: pages, hostPages: pages };
}

/** q, k, v rows of (layer, position, token): deterministic, as a model's would be given the prefix. */
function rows(layer: number, tokens: readonly number[], start: number, count: number): [Tensor, Tensor, Tensor] {
  const { numHeads: h, numKvHeads: kv, headDim: d } = geometry;
  const q: number[] = [];
  const k: number[] = [];
  const v: number[] = [];
  for (let p = start; p < start + count; p++) {
    const next = rng(1 + layer * 100_003 + p * 1009 + tokens[p] * 7);
    q.push(...randomArray(next, h * d));
    k.push(...randomArray(next, kv * d));
    v.push(...randomArray(next, kv * d));
  }
  return [backend.fromArray(q, [count, h, d]), backend.fromArray(k, [count, kv, d]), backend.fromArray(v, [count, kv, d])];
}

const read = (t: Tensor) => Array.from(backend.readSync(t));

/** Prefills the prompt in chunks of at most 8 tokens from wherever the sequence starts; returns each layer's output rows. */
function prefill(cache: KvCache, tokens: readonly number[], cacheable = true): { id: number; outs: number[][] } {
  const id = cache.admitChunked(tokens.length, cacheable ? tokens : undefined);
  const outs: number[][] = Array.from({ length: geometry.numLayers }, () => []);
  while (cache.promptRemaining(id) > 0) {
    const chunk = cache.beginPrefillChunk(id, Math.min(8, cache.promptRemaining(id)));
    for (let l = 0; l < geometry.numLayers; l++) outs[l].push(...read(cache.prefillChunkLayer(chunk, l, ...rows(l, tokens, chunk.start, chunk.count), scale)));
  }
  return { id, outs };
}

/** Decodes `tokens` one step each; returns every step's outputs. */
function decode(cache: KvCache, id: number, all: number[], tokens: readonly number[]): number[][] {
  return tokens.map((t) => {
    all.push(t);
    const step = cache.beginStep([id]);
    return Array.from({ length: geometry.numLayers }, (_, l) => read(cache.decodeLayer(step, l, ...rows(l, all, all.length - 1, 1), scale))).flat();
  });
}

function expectClose(a: readonly number[], b: readonly number[]): void {
  expect(a.length).toBe(b.length);
  expect(a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)).toBeLessThan(1e-5);
}

const tokensOf = (next: () => number, n: number) => Array.from({ length: n }, () => Math.floor(next() * 50));

describe('prefix cache', () => {
  for (const policy of PAGE_POLICIES) {
    it(`${policy}: a prompt that starts from cached pages attends, decodes and keeps pages as one prefilled whole`, () => {
      const next = rng(3);
      const doc = tokensOf(next, 41);
      const cached = new KvCache({ geometry, options: options(policy), backend, prefixCache: true });
      const plain = new KvCache({ geometry, options: options(policy), backend });

      // The first request fills the cache: prompt, then 6 decoded tokens.
      const first = [...doc];
      const a = prefill(cached, first);
      expect(cached.cachedTokens(a.id)).toBe(0);
      decode(cached, a.id, first, tokensOf(next, 6));
      cached.free(a.id, first);
      checkConsistency(cached);
      expect(cached.prefixStats()).toMatchObject({ pages: Math.floor(47 / 4), queries: 1, hits: 0 });

      // A second prompt: the document, part of the first answer, then a new question.
      const second = [...first.slice(0, 45), ...tokensOf(next, 7)];
      const b = prefill(cached, second);
      expect(cached.cachedTokens(b.id)).toBe(44);
      expect(cached.prefixStats()).toMatchObject({ hits: 1, hitTokens: 44 });
      const c = prefill(plain, second);
      for (let l = 0; l < geometry.numLayers; l++) expectClose(b.outs[l], c.outs[l].slice(c.outs[l].length - b.outs[l].length));
      checkConsistency(cached);
      const kept = (cache: KvCache, id: number, l: number) => {
        const v = cache.view(id, l);
        return v.kind === 'page' ? { resident: v.resident, backedUp: v.backups.map((b) => b !== 'none') } : v;
      };
      for (let l = 0; l < geometry.numLayers; l++) expect(kept(cached, b.id, l)).toEqual(kept(plain, c.id, l));
      const answer = tokensOf(next, 12);
      const [bb, cc] = [[...second], [...second]];
      expectClose(decode(cached, b.id, bb, answer).flat(), decode(plain, c.id, cc, answer).flat());
      checkConsistency(cached);
      for (let l = 0; l < geometry.numLayers; l++) expect(kept(cached, b.id, l)).toEqual(kept(plain, c.id, l));

      cached.free(b.id, bb);
      plain.free(c.id);
      checkConsistency(cached);
      cached.close();
      expect(cached.stats().device.used + cached.stats().host.used).toBe(0);
    });
  }

  it('a token-level policy keeps no prefix: it prefills every prompt', () => {
    const cache = new KvCache({ geometry, options: options('h2o'), backend, prefixCache: true });
    const tokens = tokensOf(rng(4), 30);
    const a = prefill(cache, tokens);
    cache.free(a.id, tokens);
    const b = prefill(cache, tokens);
    expect(cache.cachedTokens(b.id)).toBe(0);
    expect(cache.prefixStats()).toBeNull();
    cache.free(b.id);
    expect(cache.stats().device.used).toBe(0);
  });

  it('under pressure gives back the least recently used pages first and never a page a running sequence holds', () => {
    // 3 layers, ArkVale (one full layer), budget 4 pages. Each 40-token prompt holds
    // 10 + 2 * 4 = 18 device pages once prefilled; the pool has 60.
    const cache = new KvCache({ geometry, options: { ...options('arkvale', 60), hostPages: 80 }, backend, prefixCache: true });
    const next = rng(5);
    const prompts = [0, 1, 2].map(() => tokensOf(next, 40));
    for (const p of prompts) cache.free(prefill(cache, p).id, p);
    checkConsistency(cache);
    const held = cache.prefixStats()!;
    expect(held.pages).toBe(30);
    // Touch the oldest prompt, so that the second is now the least recently used.
    const again = prefill(cache, prompts[0]);
    expect(cache.cachedTokens(again.id)).toBe(36);
    // A long new prompt needs more than what is free: the cache gives back slots.
    const big = tokensOf(next, 44);
    const running = prefill(cache, big);
    checkConsistency(cache);
    const after = cache.prefixStats()!;
    expect(after.demoted + after.dropped).toBeGreaterThan(0);
    // The running sequences lost nothing: they decode as the same prompts prefilled alone.
    const plain = new KvCache({ geometry, options: options('arkvale'), backend });
    for (const [seq, tokens] of [
      [again.id, prompts[0]],
      [running.id, big],
    ] as const) {
      const fresh = prefill(plain, tokens);
      const steps = tokensOf(next, 5);
      expectClose(decode(cache, seq, [...tokens], steps).flat(), decode(plain, fresh.id, [...tokens], steps).flat());
    }
    checkConsistency(cache);
    // The most recently used prompt is still cached whole; the least recently used one lost its pages first.
    cache.free(again.id);
    cache.free(running.id);
    const first = prefill(cache, prompts[0]);
    expect(cache.cachedTokens(first.id)).toBe(36);
    cache.free(first.id);
    const second = prefill(cache, prompts[1]);
    expect(cache.prefixStats()!.demoted + cache.prefixStats()!.dropped).toBeGreaterThan(0);
    cache.free(second.id);
    checkConsistency(cache);
    cache.close();
    expect(cache.stats().device.used + cache.stats().host.used).toBe(0);
  });

  it('leaks nothing over 1,000 random request sequences (property)', () => {
    const next = rng(11);
    let checked = 0;
    for (let run = 0; run < 40; run++) {
      const policy = PAGE_POLICIES[run % 3];
      const pages = 40 + Math.floor(next() * 60);
      const cache = new KvCache({ geometry, options: { ...options(policy, pages), hostPages: 30 + Math.floor(next() * 60) }, backend, prefixCache: true });
      const stems = [0, 1, 2].map(() => tokensOf(next, 12 + Math.floor(next() * 20)));
      const live: { id: number; tokens: number[] }[] = [];
      for (let r = 0; r < 25; r++, checked++) {
        const tokens = [...stems[Math.floor(next() * 3)], ...tokensOf(next, 1 + Math.floor(next() * 10))];
        try {
          live.push({ id: prefill(cache, tokens).id, tokens });
        } catch (e) {
          // A pool too small for this request: refused whole, nothing taken.
          expect(String(e)).toMatch(/pool exhausted/);
          for (const s of cache.sequenceIds) if (!live.some((x) => x.id === s)) cache.free(s);
        }
        if (live.length && next() < 0.5) {
          const s = live[Math.floor(next() * live.length)];
          try {
            decode(cache, s.id, s.tokens, tokensOf(next, 1 + Math.floor(next() * 4)));
          } catch (e) {
            // The step was refused before it changed anything: its token was never fed.
            expect(String(e)).toMatch(/pool exhausted/);
            s.tokens.pop();
          }
        }
        while (live.length > 2 || (live.length && next() < 0.4)) {
          const s = live.splice(Math.floor(next() * live.length), 1)[0];
          cache.free(s.id, next() < 0.8 ? s.tokens : undefined);
        }
        checkConsistency(cache);
      }
      for (const s of live) cache.free(s.id, s.tokens);
      checkConsistency(cache);
      cache.close();
      const stats = cache.stats();
      expect(stats.device.used + stats.host.used + cache.store.digestPool.used).toBe(0);
    }
    expect(checked).toBe(1000);
  });
});
