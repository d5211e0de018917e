import { EngineError } from './errors.js';
import type { ChatFormat, ChatInputMessage } from './chat-format.js';
import type { ResolvedEngineConfig } from './config.js';
import type { PreparedRequest, RequestPlanner } from './prepare.js';
import { RequestStream } from './request-stream.js';
import type { AsyncEngine, EngineEvent, EngineModelInfo, EngineRequest, EngineStats, RequestHandle, RequestObserver } from './types.js';

/**
 * The part of an engine on the caller's thread: checks and tokenizes requests, keeps
 * their streams, times their events for observers (metrics), and hands the work to
 * the scheduler through `send` (the same thread or a worker).
 */
export abstract class EngineClient implements AsyncEngine {
  private readonly streams = new Map<string, { stream: RequestStream; start: number; last: number; tokens: number; detach: () => void }>();
  private readonly observers = new Set<RequestObserver>();
  private nextId = 0;
  protected closing = false;

  constructor(
    readonly model: EngineModelInfo,
    protected readonly config: ResolvedEngineConfig,
    private readonly planner: RequestPlanner,
    private readonly chat: ChatFormat,
  ) {}

  /** Queues checked requests at once: the scheduler takes them all before its next step. */
  protected abstract sendSubmit(reqs: readonly PreparedRequest[]): void;
  protected abstract sendAbort(id: string): void;
  abstract stats(): Promise<EngineStats>;
  abstract close(): Promise<EngineStats>;

  get chatFormat(): string {
    return this.chat.source;
  }

  tokenText(tokenId: number): string {
    return this.planner.tokenText(tokenId);
  }

  decode(tokenIds: readonly number[]): string {
    return this.planner.decode(tokenIds);
  }

  encodeChat(messages: readonly ChatInputMessage[], options?: { readonly tools?: readonly unknown[] }): number[] {
    return this.chat.encode(messages, options);
  }

  observe(observer: RequestObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Requests in flight here (waiting or running). */
  get inFlight(): number {
    return this.streams.size;
  }

  submit(request: EngineRequest): RequestHandle {
    return this.submitAll([request])[0];
  }

  submitAll(requests: readonly EngineRequest[]): RequestHandle[] {
    if (this.closing) throw new EngineError('engine_closed', 'the engine is shutting down');
    const ids = requests.map((r) => r.id ?? `req-${++this.nextId}`);
    ids.forEach((id, i) => {
      if (this.streams.has(id) || ids.indexOf(id) !== i) throw new EngineError('invalid_request', `a request with id "${id}" is already in flight`, 'id');
    });
    if (this.streams.size + requests.length > this.config.maxWaiting + this.config.maxRunning) {
      throw new EngineError(
        'queue_full',
        `the engine has ${this.streams.size} requests in flight, its limit is ${this.config.maxWaiting + this.config.maxRunning}; retry later`,
      );
    }
    // Every request is checked before any is queued.
    const prepared = requests.map((r, i) => this.planner.prepare(r, ids[i]));
    const now = performance.now();
    const entries = prepared.map((p, i) => {
      const id = ids[i];
      const signal = requests[i].signal;
      const onAbort = () => this.abort(id);
      const stream = new RequestStream(id, p.promptIds, () => this.abort(id));
      const entry = { stream, start: now, last: now, tokens: 0, detach: () => signal?.removeEventListener('abort', onAbort) };
      this.streams.set(id, entry);
      return { id, signal, onAbort, stream };
    });
    try {
      this.sendSubmit(prepared);
    } catch (e) {
      for (const id of ids) this.streams.delete(id);
      throw e;
    }
    for (const { id, signal, onAbort } of entries) {
      if (signal?.aborted) this.abort(id);
      else signal?.addEventListener('abort', onAbort, { once: true });
    }
    return entries.map((e) => e.stream);
  }

  abort(id: string): boolean {
    if (!this.streams.has(id)) return false;
    this.sendAbort(id);
    return true;
  }

  /** Called with each event the scheduler delivers. */
  protected deliver(id: string, event: EngineEvent | { type: 'error'; error: EngineError }): void {
    const entry = this.streams.get(id);
    if (!entry) return;
    const now = performance.now();
    if (event.type === 'token') {
      const seconds = (now - (entry.tokens === 0 ? entry.start : entry.last)) / 1000;
      for (const o of this.observers) entry.tokens === 0 ? o.onFirstToken?.(seconds) : o.onToken?.(seconds);
      entry.tokens++;
      entry.last = now;
      entry.stream.push(event);
      return;
    }
    this.streams.delete(id);
    entry.detach();
    const seconds = (now - entry.start) / 1000;
    if (event.type === 'error') {
      for (const o of this.observers)
        o.onDone?.({ seconds, usage: { promptTokens: entry.stream.promptTokens, completionTokens: entry.tokens, cachedTokens: 0 }, finishReason: 'error' });
      entry.stream.fail(event.error);
      return;
    }
    for (const o of this.observers) o.onDone?.({ seconds, usage: event.usage, finishReason: event.finishReason });
    entry.stream.push(event);
  }

  /** Ends every stream still open (the scheduler is gone). */
  protected failAll(error: EngineError): void {
    for (const id of [...this.streams.keys()]) this.deliver(id, { type: 'error', error });
  }
}
