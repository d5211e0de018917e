import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MODEL_DIR } from './test-support/fixtures.js';

const readme = fileURLToPath(new URL('../../../README.md', import.meta.url));

describe('the README custom server', () => {
  it('runs as written: its own route and its own auth around the engine and plugins', async () => {
    const code = /```js custom-server\n([\s\S]*?)```/.exec(readFileSync(readme, 'utf8'))?.[1];
    expect(code).toBeTruthy();
    // Inside this package, so that `@arkvale/server` and `fastify` resolve as for a user.
    const file = fileURLToPath(new URL('../.readme-example.mjs', import.meta.url));
    writeFileSync(file, `${code}\nexport { app, engine };\n`);
    process.env.PORT = '0';
    process.env.ARKVALE_MODEL = MODEL_DIR;
    try {
      const { app, engine } = await import(pathToFileURL(file).href);
      const { port } = app.server.address();
      const url = `http://127.0.0.1:${port}`;
      const denied = await fetch(`${url}/v1/models`);
      expect(denied.status).toBe(401);
      expect(((await denied.json()) as { error: { message: string } }).error.message).toBe('unknown team');
      const models = (await (await fetch(`${url}/v1/models`, { headers: { 'x-team': 'blue' } })).json()) as { data: { id: string }[] };
      expect(models.data[0].id).toBe('tiny-retrieval');
      const res = await fetch(`${url}/v1/summarize`, {
        method: 'POST',
        headers: { 'x-team': 'blue', 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'The old farmer painted' }),
      });
      expect(res.status).toBe(200);
      expect(typeof ((await res.json()) as { summary: unknown }).summary).toBe('string');
      expect(await (await fetch(`${url}/metrics`)).text()).toContain('arkvale:num_requests_running 0');
      await app.close();
      expect((await engine.close()).devicePages.used).toBe(0);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
