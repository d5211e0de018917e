import type { ServerResponse } from 'node:http';

/**
 * Server-sent events on a raw response, with backpressure: a write that fills the
 * socket's buffer waits for 'drain', or for the client to go away.
 */
export class SseWriter {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
  }

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  async data(payload: unknown): Promise<void> {
    await this.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  }

  private async write(text: string): Promise<void> {
    if (!this.open) return;
    if (this.res.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  end(): void {
    if (this.open) this.res.end();
  }
}
