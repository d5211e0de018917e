import type { PageStore, PoolNeeds } from '@arkvale/core';
import type { ModelCache } from '@arkvale/model-llama';
import type { ChunkPlan } from './batch-step.js';
import type { Job } from './job.js';
import { stepBound } from './step-bound.js';

const add = (a: PoolNeeds, b: PoolNeeds): PoolNeeds => ({ device: a.device + b.device, host: a.host + b.host, digests: a.digests + b.digests });
const NONE: PoolNeeds = { device: 0, host: 0, digests: 0 };

/**
 * The page arithmetic of scheduling, over the one store every plan's cache shares.
 * Pages only the prefix cache holds count as free: any request for pages takes them back.
 * Admission is by device pages: a request is admitted when its prefill's peak fits
 * beside what the running work needs for its next step and what the prefills under
 * way still have to take; under ArkVale a sequence then holds only its budget.
 */
export class Admission {
  constructor(private readonly store: PageStore) {}

  /** What one decode step of these jobs may take (each cache's own reckoning, summed). */
  decodeNeeds(jobs: readonly Job[]): PoolNeeds {
    const groups = new Map<ModelCache, number[]>();
    for (const j of jobs) groups.set(j.cache!, [...(groups.get(j.cache!) ?? []), j.seq]);
    let n = NONE;
    for (const [cache, ids] of groups) n = add(n, cache.stepNeeds(ids));
    return n;
  }

  /** Device pages the prefills under way will still take. */
  private outstanding(prefilling: readonly Job[]): number {
    return prefilling.reduce((n, j) => n + Math.max(0, j.peakDevice - j.takenDevice), 0);
  }

  private room(decoding: readonly Job[], prefilling: readonly Job[]): PoolNeeds {
    const d = this.decodeNeeds(decoding);
    return {
      device: this.store.devicePool.available - d.device - this.outstanding(prefilling),
      host: this.store.hostPool.available - d.host,
      digests: this.store.digestPool.available - d.digests,
    };
  }

  canResume(job: Job, decoding: readonly Job[], prefilling: readonly Job[]): boolean {
    const room = this.room(decoding, prefilling);
    return room.device >= job.cache!.resumeNeeds(job.seq).device + stepBound(job.cache!);
  }

  /** Whether a prefill of this peak fits now, beside the running work and a step's worth of pages. */
  canAdmit(cache: ModelCache, peak: PoolNeeds, decoding: readonly Job[], prefilling: readonly Job[]): boolean {
    const room = this.room(decoding, prefilling);
    return room.device >= peak.device + stepBound(cache) && room.host >= peak.host && room.digests >= peak.digests;
  }

  canPark(job: Job): boolean {
    return this.store.hostPool.available >= job.cache!.parkNeeds(job.seq).host;
  }

  /** The pool this step would run short of, or null when it fits. */
  shortfall(decoding: readonly Job[], chunks: readonly ChunkPlan[]): 'device' | 'host' | 'digest' | null {
    let n = this.decodeNeeds(decoding);
    for (const c of chunks) n = add(n, c.needs);
    if (n.device > this.store.devicePool.available) return 'device';
    if (n.host > this.store.hostPool.available) return 'host';
    if (n.digests > this.store.digestPool.available) return 'digest';
    return null;
  }
}
