import { ArkvaleError } from '@arkvale/core';

export type EngineErrorCode = 'invalid_request' | 'context_length_exceeded' | 'queue_full' | 'engine_closed' | 'engine_failed';

/** An error of the serving engine with a stable code; `status` is the HTTP status it maps to. */
export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    readonly param: string | null = null,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EngineError';
  }

  get status(): number {
    switch (this.code) {
      case 'invalid_request':
      case 'context_length_exceeded':
        return 400;
      case 'queue_full':
        return 429;
      case 'engine_closed':
        return 503;
      default:
        return 500;
    }
  }

  /** A plain object that survives postMessage. */
  toJSON(): { code: EngineErrorCode; message: string; param: string | null } {
    return { code: this.code, message: this.message, param: this.param };
  }

  static fromJSON(e: { code: EngineErrorCode; message: string; param: string | null }): EngineError {
    return new EngineError(e.code, e.message, e.param);
  }
}

/** Core errors a caller can fix become invalid requests; anything else is the engine's failure. */
export function asEngineError(e: unknown, param: string | null = null): EngineError {
  if (e instanceof EngineError) return e;
  if (e instanceof ArkvaleError && e.code !== 'INTERNAL') {
    return new EngineError(e.code === 'PROMPT_TOO_LONG' ? 'context_length_exceeded' : 'invalid_request', e.message, param);
  }
  return new EngineError('engine_failed', e instanceof Error ? e.message : String(e));
}
