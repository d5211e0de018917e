import { EngineError } from './errors.js';
import type { ChatFormat } from './chat-format.js';
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

  protected abstract sendSubmit(req: PreparedRequest): void;
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

  encodeChat(messages: readonly { role: string; content: unknown }[]): number[] {
    return this.chat.encode(messages);
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
    if (this.closing) throw new EngineError('engine_closed', 'the engine is shutting down');
    const id = request.id ?? `req-${++this.nextId}`;
    if (this.streams.has(id)) throw new EngineError('invalid_request', `a request with id "${id}" is already in flight`, 'id');
    if (this.streams.size >= this.config.maxWaiting + this.config.maxRunning) {
      throw new EngineError('queue_full', `the engine has ${this.streams.size} requests in flight, its limit; retry later`);
    }
    const prepared = this.planner.prepare(request, id);
    const stream = new RequestStream(id, prepared.promptIds, () => this.abort(id));
    const now = performance.now();
    const onAbort = () => this.abort(id);
    const entry = { stream, start: now, last: now, tokens: 0, detach: () => request.signal?.removeEventListener('abort', onAbort) };
    this.streams.set(id, entry);
    try {
      this.sendSubmit(prepared);
    } catch (e) {
      this.streams.delete(id);
      throw e;
    }
    if (request.signal?.aborted) this.abort(id);
    else request.signal?.addEventListener('abort', onAbort, { once: true });
    return stream;
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
