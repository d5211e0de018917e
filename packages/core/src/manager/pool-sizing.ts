import type { KvGeometry, ResolvedCacheOptions } from '../config.js';
import { createPolicy } from '../policies/registry.js';

/**
 * Pool sizes (in pages) that let `sequences` sequences of up to `tokens` tokens each
 * run to the end under these options: budgeted layers hold the budget plus one page,
 * and one layer at a time holds a whole prompt while it prefills.
 */
export function poolPagesFor(g: KvGeometry, o: ResolvedCacheOptions, tokens: number, sequences = 1): { devicePages: number; hostPages: number } {
  const policy = createPolicy(o);
  const budgeted = policy.kind === 'token' || policy.budgeted;
  const backups = policy.kind === 'page' && policy.recallable && policy.budgeted;
  const pages = Math.ceil(tokens / g.pageSize);
  const fullLayers = budgeted ? o.fullLayers : g.numLayers;
  const perSeqDevice = fullLayers * pages + (g.numLayers - fullLayers) * Math.min(pages, o.budgetPages + 1) + (budgeted ? pages : 0);
  const hostPages = backups ? (g.numLayers - o.fullLayers) * pages * sequences : 0;
  return { devicePages: perSeqDevice * sequences, hostPages };
}
