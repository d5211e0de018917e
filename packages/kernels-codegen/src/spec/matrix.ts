/** The specialisation matrix: which shapes to generate kernels for. */

export const DTYPES = ['f16', 'bf16'] as const;
export type DType = (typeof DTYPES)[number];

export const DIGEST_VARIANTS = ['cuboid-mean', 'cuboid-max', 'cuboid-center', 'sphere'] as const;
export type DigestVariant = (typeof DIGEST_VARIANTS)[number];

export interface Matrix {
  readonly dtype: readonly DType[];
  readonly headDim: readonly number[];
  readonly pageSize: readonly number[];
  /** GQA group sizes (query heads per KV head). */
  readonly group: readonly number[];
  readonly digest: readonly DigestVariant[];
}

/**
 * The bundled model's shape (head dim 128, group 2) and the common LLaMA shapes:
 * head dims 64 and 128, pages of 16 and 32 tokens, float16 and bfloat16, GQA groups
 * 1, 2, 4 and 8, every digest variant.
 */
export const DEFAULT_MATRIX: Matrix = {
  dtype: DTYPES,
  headDim: [64, 128],
  pageSize: [16, 32],
  group: [1, 2, 4, 8],
  digest: DIGEST_VARIANTS,
};

/** Every combination of the given value lists, in order (first key slowest). */
export function product<T extends Record<string, readonly unknown[]>>(lists: T): { [K in keyof T]: T[K][number] }[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [key, values] of Object.entries(lists)) {
    out = out.flatMap((o) => values.map((v) => ({ ...o, [key]: v })));
  }
  return out as { [K in keyof T]: T[K][number] }[];
}

/** `cuboid-mean` -> `cuboid_mean`, for C names. */
export const cIdent = (s: string): string => s.replace(/[^A-Za-z0-9_]/g, '_');
