#!/usr/bin/env node
// Packs every publishable workspace package with `pnpm pack`, installs the tarballs
// into a scratch project outside the workspace with npm, and imports each one there:
// proof that a package works as published, not only inside the monorepo.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCommand } from '../lib/args.mjs';

parseCommand({
  usage: 'node tools/release/pack-check.mjs   (the last step of pnpm test; pnpm pack-check)',
  about: `Packs every publishable package under packages/ with pnpm pack, installs the tarballs
with npm into a scratch project outside the workspace, imports each one there and runs
each package's commands with --help. Run pnpm build first.`,
});

const root = resolve(import.meta.dirname, '../..');

// Every changeset must keep its front matter (`changeset version` refuses the whole set
// otherwise): a markdown formatter once turned the closing --- into a heading.
const bump = /^'@arkvale\/[a-z-]+': (major|minor|patch)$/;
for (const file of readdirSync(join(root, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
  const lines = readFileSync(join(root, '.changeset', file), 'utf8').split('\n');
  const end = lines.indexOf('---', 1);
  if (lines[0] !== '---' || end < 2 || !lines.slice(1, end).every((l) => bump.test(l))) {
    throw new Error(`.changeset/${file}: the front matter must be ---, one '@arkvale/<package>': major|minor|patch line per package, ---`);
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'arkvale-pack-'));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });

try {
  const packages = readdirSync(join(root, 'packages'))
    .filter((dir) => existsSync(join(root, 'packages', dir, 'package.json')))
    .map((dir) => ({ dir: join(root, 'packages', dir), json: JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) }))
    .filter((p) => !p.json.private);
  const tarballs = packages.map((p) => {
    const out = run('pnpm', ['pack', '--pack-destination', scratch], p.dir).trim().split('\n').pop();
    return resolve(p.dir, out);
  });
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', ...tarballs], scratch);
  for (const p of packages) {
    const probe = `const m = await import(${JSON.stringify(p.json.name)}); if (Object.keys(m).length === 0) throw new Error('no exports'); console.log(${JSON.stringify(p.json.name)}, Object.keys(m).length, 'exports');`;
    process.stdout.write(run(process.execPath, ['--input-type=module', '-e', probe], scratch));
    // The CUDA binding must install and load anywhere, and say what it found: a GPU, or why there is none.
    if (p.json.name === '@arkvale/cuda-binding') {
      const state = `const { cudaStatus } = await import('@arkvale/cuda-binding'); const s = cudaStatus(); console.log('@arkvale/cuda-binding:', s.summary + (s.addon.loaded ? ' [addon loaded: ' + s.addon.archs.join(', ') + ']' : ''));`;
      process.stdout.write(run(process.execPath, ['--input-type=module', '-e', state], scratch));
    }
    // A package's commands must start from the installed copy too.
    for (const [bin, file] of Object.entries(p.json.bin ?? {})) {
      run(process.execPath, [join(scratch, 'node_modules', p.json.name, file), '--help'], scratch);
      console.log(`${p.json.name}: ${bin} --help runs`);
    }
  }
  console.log(`pack-check: ${packages.length} package(s) packed, installed and imported outside the workspace`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
