import type { EngineError } from './errors.js';
import type { EngineEvent, RequestHandle } from './types.js';

/**
 * The events of one request as an async iterable with one consumer. Leaving the loop
 * early (break, return, throw) aborts the request, so a consumer that stops listening
 * never leaves pages behind.
 */
export class RequestStream implements RequestHandle {
  private readonly queue: EngineEvent[] = [];
  private waiter: { resolve: (r: IteratorResult<EngineEvent>) => void; reject: (e: unknown) => void } | null = null;
  private error: EngineError | null = null;
  private ended = false;
  private iterated = false;

  constructor(
    readonly id: string,
    readonly promptIds: readonly number[],
    private readonly cancel: () => void,
  ) {}

  get promptTokens(): number {
    return this.promptIds.length;
  }

  get finished(): boolean {
    return this.ended;
  }

  push(event: EngineEvent): void {
    if (this.ended) return;
    if (event.type === 'done') this.ended = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: event, done: false });
    } else {
      this.queue.push(event);
    }
  }

  fail(error: EngineError): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    if (this.iterated) throw new Error(`request ${this.id} is already being iterated`);
    this.iterated = true;
    return {
      next: () => {
        const event = this.queue.shift();
        if (event) return Promise.resolve({ value: event, done: false });
        if (this.error) return Promise.reject(this.error);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
      return: () => {
        if (!this.ended) this.cancel();
        this.ended = true;
        this.queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
