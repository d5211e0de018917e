// Backends, loaded when asked for.
export { loadBackend, describeBackend, checkBackendChoice, checkKvDtype, BACKENDS, GPU_DTYPES } from './load-backend.js';
export type { LoadBackendOptions, BackendName, GpuDtype } from './load-backend.js';

// The core every face drives.
export { EngineCore } from './engine-core.js';
export type { EngineCoreInit, EventSink, StepReport } from './engine-core.js';
export { resolveEngineConfig } from './config.js';
export { batchDevicePages, stepPagesBound } from './step-bound.js';
export type { EngineConfig, ResolvedEngineConfig } from './config.js';
export { drawRows, sampleRows } from './sampler.js';
export type { RowSampling } from './sampler.js';
export { checkSampling } from './sampling-options.js';
export type { SamplingOptions } from './sampling-options.js';
export { TextStream } from './text-stream.js';

// The offline face: a batch of requests to the end.
export { generateBatch, checkGenerationRequest, BatchRun, BATCH_PASS_ROWS } from './generate-batch.js';
export type { GenerationRequest, GenerationOutput, GenerationTimings, BatchResult, BatchOptions, BatchModel } from './generate-batch.js';

// The async face: submit, abort, stats, close; on this thread or a worker.
export { RankWorkers } from './ranks/rank-workers.js';
export { LocalEngine } from './local-engine.js';
export type { LocalEngineOptions } from './local-engine.js';
export { WorkerEngine } from './worker-engine.js';
export type { WorkerEngineOptions } from './worker-engine.js';
export type { ModelOptions } from './model-parts.js';
export { createChatFormat, messageText } from './chat-format.js';
export type { ChatFormat, ChatInputMessage } from './chat-format.js';
export type * from './types.js';
export { rowLogprobs } from './logprobs.js';
export type { TokenLogprob, PositionLogprobs } from './logprobs.js';
export { EngineError, asEngineError } from './errors.js';
export type { EngineErrorCode } from './errors.js';
