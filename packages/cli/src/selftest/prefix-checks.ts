import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '@arkvale/core';
import { LocalEngine } from '@arkvale/engine';
import { result, type CheckResult } from './twin.js';

/** Question endings after the document: each one's greedy answer is compared. */
const QUESTIONS = [' What is the pass key? The pass key is', ' The old farmer', ' Remember the pass key. It is', ' Once upon a time'];

async function greedy(engine: LocalEngine, prompt: string, cachePrefix: boolean): Promise<number[]> {
  const ids: number[] = [];
  for await (const ev of engine.submit({ prompt, maxTokens: 12, temperature: 0, ignoreEos: true, cachePrefix })) {
    if (ev.type === 'token') ids.push(ev.tokenId);
  }
  return ids;
}

/**
 * The prefix cache on the backend under test, with a trained model whose folder has
 * `filler.txt` (the bundled model): questions on one document (about `words` words of
 * its filler around a pass key) answer the same starting from the cached document as
 * prefilled whole, under ArkVale. On a GPU a cached question's rows meet other kernels
 * than the whole prompt's (chunk attention, other product shapes), so the logits agree
 * only to rounding; a trained model's greedy choices are clear enough not to change.
 */
export async function prefixCacheChecks(modelDir: string, backend: Backend, label: string, words = 700): Promise<CheckResult[]> {
  const filler = readFileSync(join(modelDir, 'filler.txt'), 'utf8').split(/\s+/);
  const half = filler.slice(0, words / 2).join(' ');
  const rest = filler.slice(words / 2, words).join(' ');
  const document = `There is an important piece of information hidden inside a lot of irrelevant text. ${half} The pass key is 71432. Remember it. 71432 is the pass key. ${rest}`;
  // Small pools: a GPU's planned pools (most of its memory, half the machine's pinned) would take longer to allocate than the check to run.
  const engine = await LocalEngine.load({ modelDir, backend, pageSize: 16, budgetTokens: 256, policy: 'arkvale', devicePages: 4096, hostPages: 8192 });
  try {
    // The first question leaves the document's pages in the cache; the others start from them.
    await greedy(engine, document + QUESTIONS[0], true);
    const out: CheckResult[] = [];
    for (const q of QUESTIONS) {
      const cached = await greedy(engine, document + q, true);
      const whole = await greedy(engine, document + q, false);
      const at = cached.findIndex((t, i) => t !== whole[i]);
      out.push(
        result(
          'prefix cache: answers as prefilled whole',
          `${label}, "${q.trim()}"${at >= 0 ? `: differs at token ${at}` : ''}`,
          at < 0 ? 0 : whole.length - at,
          0,
        ),
      );
    }
    const stats = await engine.stats();
    out.push(result('prefix cache: later questions start from the document', label, stats.prefixCache.hits >= QUESTIONS.length ? 0 : 1, 0));
    return out;
  } finally {
    await engine.close();
  }
}
