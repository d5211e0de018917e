import type { ResolvedCacheOptions } from '../config.js';
import { arkvalePolicy } from './arkvale.js';
import { fullPolicy } from './full.js';
import type { KvPolicy } from './policy.js';
import { questPolicy } from './quest.js';
import { h2oPolicy, streamingLlmPolicy, tovaPolicy } from './token-policies.js';

/** The policy object for resolved (validated) cache options. */
export function createPolicy(o: ResolvedCacheOptions): KvPolicy {
  switch (o.policy) {
    case 'full':
      return fullPolicy();
    case 'streaming-llm':
      return streamingLlmPolicy(o.sinkTokens);
    case 'h2o':
      return h2oPolicy();
    case 'tova':
      return tovaPolicy();
    case 'quest':
      return questPolicy();
    case 'arkvale':
      return arkvalePolicy(o.digest, o.selection);
  }
}
