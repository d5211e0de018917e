import { KvCache, poolPagesFor, resolveCacheOptions, type PolicyName } from '@arkvale/core';
import { CudaBackend, idleCudaAddon, type IdleDevice } from '@arkvale/cuda-binding';
import { kvGeometry, LlamaForward, randomLlamaWeights, shapeConfig, type LlamaShapeName } from '@arkvale/model-llama';
import { batchDevicePages } from '../step-bound.js';

export interface IdleCudaSetup {
  readonly shape: LlamaShapeName;
  readonly policy: PolicyName;
  readonly budgetTokens: number;
  readonly pageSize: number;
  /** Tokens a sequence reaches; the pools hold `batch` of them. */
  readonly tokens: number;
  readonly batch: number;
  /** The backend's direct replays (default on). */
  readonly directReplay?: boolean;
  /** A device that does nothing until the host waits for it (IdleAddonOptions.lagging). */
  readonly lagging?: boolean;
}

/**
 * The CUDA backend over an addon that does nothing (idleCudaAddon), random weights at a
 * model shape, and a cache whose pools hold the batch: the host's whole side of a
 * GPU run (graphs, replays, waits), with no GPU. `dispose` frees the cache and weights.
 */
export function idleCudaModel(o: IdleCudaSetup) {
  const { addon, device } = idleCudaAddon({ lagging: o.lagging });
  const backend = new CudaBackend({ addon, dtype: 'f16', ...(o.directReplay !== undefined ? { directReplay: o.directReplay } : {}) });
  const config = shapeConfig(o.shape);
  const forward = new LlamaForward(config, randomLlamaWeights(config, backend, 3), backend, o.tokens);
  const geometry = kvGeometry(config, o.pageSize, 2);
  const plan = { policy: o.policy, budgetTokens: o.budgetTokens, pageSize: o.pageSize };
  const resolved = resolveCacheOptions(geometry, { ...plan, devicePages: 1 });
  const cache = new KvCache({
    geometry,
    options: {
      ...plan,
      devicePages: batchDevicePages(geometry, resolved, o.tokens, o.batch),
      hostPages: poolPagesFor(geometry, resolved, o.tokens, o.batch).hostPages,
    },
    backend,
  });
  const model = { forward, tokenizer: null, eosIds: [] };
  const dispose = () => {
    cache.close();
    forward.dispose();
  };
  return { backend, device: device as IdleDevice, config, cache, model, dispose };
}
