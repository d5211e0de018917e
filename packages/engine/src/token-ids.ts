import { invalidArgument } from '@arkvale/core';

/** Throws INVALID_ARGUMENT naming the first id that is not a token of a `vocabSize`-token vocabulary. */
export function checkTokenIds(ids: Iterable<unknown>, vocabSize: number): void {
  for (const t of ids) {
    if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= vocabSize) {
      throw invalidArgument(`token id ${String(t)} is outside the vocabulary (0..${vocabSize - 1})`);
    }
  }
}
