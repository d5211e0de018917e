/** Writes that leave unchanged files (and their timestamps) alone, so builds stay incremental. */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export type WriteOutcome = 'written' | 'unchanged';

export function writeIfChanged(file: string, content: string): WriteOutcome {
  try {
    if (readFileSync(file, 'utf8') === content) return 'unchanged';
  } catch {
    // Missing: write it.
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return 'written';
}

/** Files under `dir` (recursive, relative paths with '/'), or none if it does not exist. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries.sort()) {
      const full = path.join(d, e);
      const r = rel ? `${rel}/${e}` : e;
      if (statSync(full).isDirectory()) walk(full, r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out;
}

export function removeFile(file: string): void {
  rmSync(file, { force: true });
}
