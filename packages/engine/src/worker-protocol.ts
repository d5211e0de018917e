import type { EngineErrorCode } from './errors.js';
import type { ResolvedEngineConfig } from './config.js';
import type { ModelSource } from './model-parts.js';
import type { PreparedRequest } from './prepare.js';
import type { EngineEvent, EngineStats } from './types.js';

/** What the worker is started with (structured-cloneable). */
export interface WorkerInit {
  /** The checkpoint folder or the shape. */
  readonly model: ModelSource;
  readonly backend: string;
  /** URL of a module exporting `createBackend(name, warn, options)`; null: the engine's loadBackend. */
  readonly backendModule: string | null;
  /** The factory's third argument; for loadBackend, `{ dtype }`. */
  readonly backendOptions: Record<string, unknown>;
  /** Share of a GPU's memory the engine may use (LlamaEngine.load, ShapeModel.load). */
  readonly gpuMemoryUtilization: number;
  readonly config: ResolvedEngineConfig;
  /** The pools the caller gave; the worker plans the others from the hardware (planPools). */
  readonly pools: { readonly devicePages?: number; readonly hostPages?: number };
}

export type ErrorJson = { code: EngineErrorCode; message: string; param: string | null };
export type WireEvent = EngineEvent | { readonly type: 'error'; readonly error: ErrorJson };

export type ToWorker =
  | { readonly type: 'submit'; readonly requests: readonly PreparedRequest[] }
  | { readonly type: 'abort'; readonly id: string }
  | { readonly type: 'stats'; readonly ticket: number }
  | { readonly type: 'close' };

export type FromWorker =
  | { readonly type: 'ready'; readonly backend: string; readonly devicePages: number; readonly hostPages: number }
  | { readonly type: 'fatal'; readonly message: string }
  | { readonly type: 'log'; readonly text: string }
  | { readonly type: 'events'; readonly events: readonly (readonly [string, WireEvent])[] }
  | { readonly type: 'stats'; readonly ticket: number; readonly stats: EngineStats }
  | { readonly type: 'closed'; readonly stats: EngineStats };
