/**
 * Shared shapes of the library's specs and the page layout every KV kernel agrees
 * on with @arkvale/core: a page slot holds [K|V][kvHead][token][dim] elements.
 */
import type { DType, DigestVariant } from '../spec/matrix.js';

/** Elements per 16-byte vector access of a 16-bit type. */
export const VEC = 8;

export interface DtypeSpec {
  readonly dtype: DType;
}

export interface PagedSpec {
  readonly dtype: DType;
  readonly headDim: number;
  readonly pageSize: number;
}

export interface DigestSpec extends PagedSpec {
  readonly variant: DigestVariant;
}

/** Checks shared by every kernel that vectorises over the head dimension. */
export function checkHeadDim(headDim: number): string | undefined {
  if (!Number.isInteger(headDim) || headDim < 32 || headDim % 32 !== 0 || headDim > 256) {
    return `head dim ${headDim} must be a multiple of 32 between 32 and 256`;
  }
  return undefined;
}

/** Kernels whose lanes split the head dimension in a power-of-two shuffle tree. */
export function checkPowerOfTwoHeadDim(headDim: number): string | undefined {
  return (
    checkHeadDim(headDim) ??
    ((headDim & (headDim - 1)) === 0 ? undefined : `head dim ${headDim} must be a power of two (32..256) for this kernel's lane layout`)
  );
}

export function checkPageSize(pageSize: number): string | undefined {
  if (!Number.isInteger(pageSize) || pageSize < 1 || (pageSize & (pageSize - 1)) !== 0 || pageSize > 256) {
    return `page size ${pageSize} must be a power of two up to 256`;
  }
  return undefined;
}

export const digestName = (v: DigestVariant): string => v.replace(/-/g, '_');
