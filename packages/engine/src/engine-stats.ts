import type { PagePool } from '@arkvale/core';
import type { ModelCache } from '@arkvale/model-llama';
import type { EngineStats, PoolGauge, PrefixCacheGauge } from './types.js';

/** Recalls of the last steps, for per-step means. */
export class StepWindow {
  private readonly recalls: number[] = [];
  bytesPerPage = 0;

  constructor(private readonly size: number) {}

  push(recalls: number, bytesPerPage: number): void {
    this.recalls.push(recalls);
    if (this.recalls.length > this.size) this.recalls.shift();
    this.bytesPerPage = bytesPerPage;
  }

  get meanRecalls(): number {
    return this.recalls.length ? this.recalls.reduce((a, b) => a + b, 0) / this.recalls.length : 0;
  }
}

const gauge = (p: PagePool): PoolGauge => ({ used: p.used, cached: p.reclaimable, capacity: p.capacity, bytesPerPage: p.bytesPerPage });

export function collectEngineStats(s: {
  waiting: number;
  running: number;
  prefilling: number;
  parked: number;
  caches: [string, ModelCache][];
  counters: {
    steps: number;
    decodeSteps: number;
    decodeStepMs: number;
    decodeStepRows: number;
    graphReplayedSteps: number;
    graphDirectSteps: number;
    overlappedSteps: number;
    prefillTokens: number;
    promptTokens: number;
    generationTokens: number;
    parks: number;
    resumes: number;
    forks: number;
    finished: number;
    aborted: number;
    failed: number;
  };
  window: StepWindow;
}): EngineStats {
  const store = s.caches[0][1].store;
  const bytes = store.devicePool.bytesPerPage;
  return {
    waiting: s.waiting,
    running: s.running,
    prefilling: s.prefilling,
    parked: s.parked,
    sequences: s.caches.reduce((n, [, c]) => n + c.sequenceIds.length, 0),
    devicePages: gauge(store.devicePool),
    hostPages: gauge(store.hostPool),
    digestPages: gauge(store.digestPool),
    ...s.counters,
    recalls: store.counters.recalls,
    recallBytes: store.counters.recalls * bytes,
    recallsPerStep: s.window.meanRecalls,
    recallBytesPerStep: s.window.meanRecalls * bytes,
    prefixCache: prefixGauge(s.caches.map(([, c]) => c)),
    caches: s.caches.map(([plan, cache]) => ({ plan, kv: cache.stats() })),
  };
}

function prefixGauge(caches: readonly ModelCache[]): PrefixCacheGauge {
  const sum = { queries: 0, queryTokens: 0, hits: 0, hitTokens: 0, pages: 0, deviceSlots: 0, hostSlots: 0 };
  for (const c of caches) {
    const p = c.prefixStats();
    if (!p) continue;
    for (const key of Object.keys(sum) as (keyof typeof sum)[]) sum[key] += p[key];
  }
  return sum;
}
