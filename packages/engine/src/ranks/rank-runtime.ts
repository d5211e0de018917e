import { KvCache, type Backend, type Communicator, type DecodeStep, type PrefillChunk, type Tensor } from '@arkvale/core';
import { kvGeometry, LlamaForward, MLP_CHUNK_ROWS, openModelDir, shapeConfig, tensorParallelConfig, type RowSegment } from '@arkvale/model-llama';
import { loadShare } from './load-share.js';
import type { FromRank, RankInit, ToRank, WireBatch } from './rank-protocol.js';

/** How a rank worker talks to the engine and to the other ranks. */
export interface RankLinks {
  readonly backend: Backend;
  readonly comm: Communicator;
  post(m: FromRank): void;
  /** Calls `handle` with each message from the engine, in order. */
  onMessage(handle: (m: ToRank) => void): void;
  /** Tells the other ranks this one failed, where the communicator can (shared memory); NCCL's ranks are told by the engine. */
  breakGroup(): void;
  /** Ends this worker after its last message. */
  close(): void;
}

/**
 * One tensor-parallel rank held by a worker (a thread, RankWorkers; or a process per
 * GPU): its share of the weights on its own backend, its caches, mirrored from the
 * engine's (every change in the order the engine made it), and the passes the engine
 * sends, run to the same collectives as the other ranks. A failure breaks the group
 * where it can, so no rank waits for this one, and is reported.
 */
export async function serveRank(init: RankInit, links: RankLinks): Promise<void> {
  const { backend, comm, post } = links;
  const fail = (e: unknown) => {
    links.breakGroup();
    post({ type: 'fatal', message: `tensor-parallel rank ${init.rank}: ${e instanceof Error ? e.message : String(e)}` });
  };
  let forward: LlamaForward;
  let rankConfig: ReturnType<typeof tensorParallelConfig>;
  try {
    const config = init.modelDir !== undefined ? openModelDir(init.modelDir).config : shapeConfig(init.shape!);
    rankConfig = tensorParallelConfig(config, init.size);
    const weights = await loadShare(init, config, init.rank, init.size, backend);
    forward = new LlamaForward(rankConfig, weights, backend, init.maxPositions, MLP_CHUNK_ROWS, comm);
  } catch (e) {
    fail(e);
    return;
  }
  const bytes = backend.dtype === 'f32' ? 4 : 2;
  const caches = new Map<number, KvCache>();
  // Steps and chunks by their cache and the handle that cache gave them, until a pass has used them.
  const begun = new Map<string, DecodeStep | PrefillChunk>();
  const key = (cache: number, handle: number) => `${cache}:${handle}`;
  const cacheOf = (id: number) => {
    const c = caches.get(id);
    if (!c) throw new Error(`no cache ${id}`);
    return c;
  };
  const segmentOf = (s: WireBatch['segments'][number]): RowSegment => {
    const cache = cacheOf(s.ref.cache);
    const ref = s.ref;
    if (ref.kind === 'prefill') return { ...s, attend: (l, q, k, v) => cache.prefillLayer(ref.seq, l, q, k, v, forward.scale) };
    const target = begun.get(key(ref.cache, ref.handle));
    if (!target) throw new Error(`no ${ref.kind} ${ref.handle} of cache ${ref.cache}`);
    return {
      ...s,
      attend: (l, q, k, v) =>
        ref.kind === 'chunk'
          ? cache.prefillChunkLayer(target as PrefillChunk, l, q, k, v, forward.scale)
          : cache.decodeLayer(target as DecodeStep, l, q, k, v, forward.scale),
    };
  };
  const handle = (m: ToRank) => {
    switch (m.op) {
      case 'createCache': {
        const geometry = kvGeometry(rankConfig, m.page.pageSize, bytes, m.page.kvDtype);
        const store = m.first === null ? undefined : cacheOf(m.first).store;
        caches.set(m.cache, new KvCache({ geometry, options: m.options, backend, store, prefixCache: m.prefixCache }));
        return;
      }
      case 'change': {
        const cache = cacheOf(m.cache) as unknown as Record<string, (...args: unknown[]) => unknown>;
        if (m.call === 'skipStep') {
          (cache.skipStep as (s: DecodeStep) => void)(begun.get(key(m.cache, m.handle!)) as DecodeStep);
          return;
        }
        const out = cache[m.call](...m.args);
        if (m.handle !== undefined) begun.set(key(m.cache, m.handle), out as DecodeStep | PrefillChunk);
        if (m.call === 'close') caches.delete(m.cache);
        return;
      }
      case 'pass': {
        const b = m.batch;
        const logits: Tensor = forward.forwardRows({ ...b, segments: b.segments.map(segmentOf) });
        backend.dispose(logits);
        for (const s of b.segments) if (s.ref.kind !== 'prefill') begun.delete(key(s.ref.cache, s.ref.handle));
        return;
      }
      case 'reservePadding':
        forward.reservePadding(m.rows);
        return;
      case 'usage': {
        const stores = new Set([...caches.values()].map((c) => c.store));
        const used = (pool: 'devicePool' | 'hostPool') => [...stores].reduce((n, s) => n + s[pool].used, 0);
        const sequences = [...caches.values()].reduce((n, c) => n + c.sequenceIds.length, 0);
        post({ type: 'usage', ticket: m.ticket, usage: { devicePages: used('devicePool'), hostPages: used('hostPool'), sequences } });
        return;
      }
      case 'close':
        // The first cache owns the store the others share: it closes last.
        for (const c of [...caches.values()].reverse()) c.close();
        forward.dispose();
        post({ type: 'closed' });
        links.close();
        return;
    }
  };
  let failed = false;
  links.onMessage((m) => {
    if (failed) return;
    try {
      handle(m);
    } catch (e) {
      failed = true;
      fail(e);
    }
  });
  post({ type: 'ready' });
}
