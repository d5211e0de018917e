import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('@arkvale/server speaks HTTP only', () => {
  it('depends on no backend package and loads no native addon when imported', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies)).not.toContain('@arkvale/cpu-backend');
    expect(Object.keys(pkg.dependencies)).not.toContain('@arkvale/cuda-binding');
    // A fresh process: every process.dlopen (a .node addon) while the built package and its plugins load.
    const script = `
      const loaded = [];
      const dlopen = process.dlopen;
      process.dlopen = (module, file, ...rest) => { loaded.push(file); return dlopen.call(process, module, file, ...rest); };
      const server = await import('@arkvale/server');
      const app = (await import('fastify')).default();
      app.register(server.openaiRoutes, { prefix: '/v1', engine: () => null });
      await app.ready();
      console.log(JSON.stringify(loaded));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual([]);
  });
});
