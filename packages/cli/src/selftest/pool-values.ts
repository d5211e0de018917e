import type { Backend, KvStorage } from '@arkvale/core';
import { decodeFloats, RefFp8KvStorage, RefKvStorage } from '@arkvale/core';
import { STREAM, type CudaBackend, type CudaKvStorage } from '@arkvale/cuda-binding';

/** A pool's contents as floats: the reference's array, or the CUDA pool read back. */
export function poolValues(b: Backend, s: KvStorage): Float32Array {
  if (s instanceof RefKvStorage) return s.data;
  const c = s as CudaKvStorage;
  const bytes = new Uint8Array(c.slots * c.pageBytes);
  (b as CudaBackend).addon.download(c.ptr, bytes, STREAM.compute, 'self-test pool read');
  return decodeFloats(bytes, b.dtype);
}

/** An fp8 pool's bytes (codes and scale bytes, slot by slot): the reference's array, or the CUDA pool read back. */
export function poolBytes(b: Backend, s: KvStorage): Uint8Array {
  if (s instanceof RefFp8KvStorage) return s.bytes;
  const c = s as CudaKvStorage;
  const bytes = new Uint8Array(c.slots * c.pageBytes);
  (b as CudaBackend).addon.download(c.ptr, bytes, STREAM.compute, 'self-test pool read');
  return bytes;
}
