// Nx runtime input of the build target (package.json): what the build depends on
// that Nx cannot hash itself, because generated/ is git-ignored: the kernels
// merged into generated/ beyond the default matrix, and where nvcc is.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findNvcc } from './build-config.mjs';

const generated = fileURLToPath(new URL('../generated/', import.meta.url));
const names = (file, pick) => {
  try {
    return pick(JSON.parse(readFileSync(generated + file, 'utf8')));
  } catch {
    return [];
  }
};
const defaults = new Set(names('default-kernels.json', (list) => list));
const merged = names('manifest.json', (m) => m.kernels.map((k) => k.name))
  .filter((n) => !defaults.has(n))
  .sort();
const nvcc = findNvcc(process.env)?.path ?? 'none';
const digest = createHash('sha256').update(merged.join('\n')).digest('hex').slice(0, 16);
console.log(`nvcc=${nvcc} merged=${merged.length}:${digest}`);
