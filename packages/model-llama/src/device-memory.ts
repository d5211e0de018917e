import type { Backend, KvGeometry, ResolvedCacheOptions } from '@arkvale/core';
import { ArkvaleError, pageBytes } from '@arkvale/core';
import type { LlamaConfig } from './config.js';
import { MLP_CHUNK_ROWS } from './forward.js';

/**
 * Device memory planning for backends that have their own memory (a GPU), the way a
 * serving engine plans it: the engine may use `utilization` of the device's total
 * memory; weights come first, then activations, and the KV pool takes what is left.
 * Everything is checked before it is allocated, so a model or a cache that does not
 * fit fails at once, with the numbers, instead of halfway through.
 */

const GIB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;

/** Bytes the engine may still allocate: free memory minus the share `utilization` keeps back. */
export function usableBytes(backend: Backend, utilization: number): { usable: number; free: number; total: number } | undefined {
  const m = backend.memory?.();
  if (!m) return undefined;
  return { usable: Math.max(0, m.freeBytes - (1 - utilization) * m.totalBytes), free: m.freeBytes, total: m.totalBytes };
}

function budgetLine(u: { usable: number; free: number; total: number }, utilization: number): string {
  return `${gib(u.usable)} usable (${gib(u.free)} free of ${gib(u.total)}, --gpu-memory-utilization ${utilization} keeps ${gib((1 - utilization) * u.total)} back)`;
}

/** Throws OUT_OF_MEMORY when weights of `elements` parameters in the backend's dtype do not fit. */
export function checkWeightsFit(backend: Backend, config: LlamaConfig, elements: number, utilization: number): void {
  const u = usableBytes(backend, utilization);
  if (!u) return;
  const bytes = elements * (backend.dtype === 'f32' ? 4 : 2);
  if (bytes > u.usable) {
    throw new ArkvaleError(
      'OUT_OF_MEMORY',
      `the weights of ${config.source} need ${gib(bytes)} in ${backend.dtype}, but the GPU has ${budgetLine(u, utilization)}`,
    );
  }
}

/**
 * Activation memory of one forward pass over `tokens` rows (the largest live set of a
 * layer: residual, normed input, the stacked q/k/v product and its split, attention
 * output, the MLP's chunk outputs and their join, the stacked gate/up product and the
 * gated product of one MLP chunk, logits), with a factor of two for the allocator's
 * slack.
 */
export function activationBytes(config: LlamaConfig, tokens: number, logitRows: number, element: number): number {
  const perRow = 4 * config.hiddenSize + 2 * (config.numHeads + 2 * config.numKvHeads) * config.headDim;
  const mlp = Math.min(tokens, MLP_CHUNK_ROWS) * 3 * config.intermediateSize;
  return 2 * ((tokens * perRow + mlp) * element + logitRows * config.vocabSize * 4);
}

/**
 * Device bytes of a digest (a page's per-head key summary), stored in the activation
 * dtype (fp8 pages keep 16-bit digests) for every page, resident or backed up.
 */
export function digestBytes(g: KvGeometry): number {
  return g.numKvHeads * 2 * g.headDim * g.bytesPerElement;
}

/** Device bytes of a cache's KV pools: its device pages (`pageBytes`: fp8 pages at their own size), and the digests of every page it can score. */
export function kvDeviceBytes(g: KvGeometry, devicePages: number, hostPages: number): number {
  return devicePages * pageBytes(g) + (devicePages + hostPages) * digestBytes(g);
}

/**
 * Device KV pages that fit next to the activations of a `tokens`-row pass, with the
 * digests of those pages and of the host pages `hostPagesFor` pairs with them (a
 * non-decreasing function); undefined where the backend has no device memory.
 */
export function devicePageCapacity(
  backend: Backend,
  config: LlamaConfig,
  g: KvGeometry,
  utilization: number,
  tokens: number,
  hostPagesFor: (devicePages: number) => number = () => 0,
): number | undefined {
  const u = usableBytes(backend, utilization);
  if (!u) return undefined;
  const room = u.usable - activationBytes(config, tokens, 1, g.bytesPerElement);
  // The largest count whose pools fit (binary search: the bytes grow with the count).
  let lo = 0;
  let hi = Math.max(0, Math.floor(room / pageBytes(g)));
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (kvDeviceBytes(g, mid, hostPagesFor(mid)) <= room) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Throws OUT_OF_MEMORY when a cache of `devicePages` pages (and its digests) would not fit beside a `tokens`-row pass. */
export function checkCacheFits(backend: Backend, config: LlamaConfig, g: KvGeometry, o: ResolvedCacheOptions, tokens: number, utilization: number): void {
  const u = usableBytes(backend, utilization);
  if (!u) return;
  const kv = kvDeviceBytes(g, o.devicePages, o.hostPages);
  const activations = activationBytes(config, tokens, 1, g.bytesPerElement);
  if (kv + activations > u.usable) {
    throw new ArkvaleError(
      'OUT_OF_MEMORY',
      `the KV cache needs ${gib(kv)} (${o.devicePages} device pages of ${g.pageSize} tokens and their digests) plus about ${gib(activations)} ` +
        `of activations for ${tokens} tokens, but the GPU has ${budgetLine(u, utilization)}; lower the budget, the batch or the prompt length`,
    );
  }
}
