/**
 * Every error the core throws is an ArkvaleError with a stable `code`, so callers
 * (CLI, server) can map it to an exit code or HTTP status without parsing messages.
 */
export type ArkvaleErrorCode =
  | 'INVALID_CONFIG'
  | 'UNKNOWN_POLICY'
  | 'POOL_EXHAUSTED'
  | 'UNKNOWN_SEQUENCE'
  | 'INVALID_ARGUMENT'
  | 'MODEL_FILE'
  | 'UNSUPPORTED_MODEL'
  | 'PROMPT_TOO_LONG'
  | 'NO_DEVICE'
  | 'OUT_OF_MEMORY'
  | 'INTERNAL';

export class ArkvaleError extends Error {
  readonly code: ArkvaleErrorCode;
  constructor(code: ArkvaleErrorCode, message: string) {
    super(message);
    this.name = 'ArkvaleError';
    this.code = code;
  }
}

export class ConfigError extends ArkvaleError {
  constructor(message: string) {
    super('INVALID_CONFIG', message);
    this.name = 'ConfigError';
  }
}

export class PoolExhaustedError extends ArkvaleError {
  readonly pool: string;
  readonly requested: number;
  readonly available: number;
  constructor(pool: string, requested: number, available: number, capacity: number) {
    super(
      'POOL_EXHAUSTED',
      `${pool} page pool exhausted: ${requested} page(s) requested, ${available} free of ${capacity}. ` +
        `Raise the pool size, lower the budget, or admit fewer sequences.`,
    );
    this.name = 'PoolExhaustedError';
    this.pool = pool;
    this.requested = requested;
    this.available = available;
  }
}

export class SequenceError extends ArkvaleError {
  constructor(message: string) {
    super('UNKNOWN_SEQUENCE', message);
    this.name = 'SequenceError';
  }
}

export function invalidArgument(message: string): ArkvaleError {
  return new ArkvaleError('INVALID_ARGUMENT', message);
}

/** A broken internal invariant: a bug in this package, never the caller's fault. */
export function internalError(message: string): ArkvaleError {
  return new ArkvaleError('INTERNAL', `internal error (please report): ${message}`);
}
