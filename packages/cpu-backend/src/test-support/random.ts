export { seededUniform as rng, randomFloats as randomArray } from '@arkvale/core';

/** A random permutation of 0..n-1. */
export function shuffled(next: () => number, n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
