import type { DType, Tensor } from '@arkvale/core';
import { internalError, invalidArgument } from '@arkvale/core';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4 };

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Returns a device allocation of `bytes` to its owner (the buffer pool, else the caching allocator). */
export type Release = (ptr: bigint, bytes: number) => void;

/**
 * One device allocation, shared by a tensor and its views (reshape, sliceRows): freed
 * when the last holder lets go. Freed memory is reused by later work on the compute
 * stream, which stream order makes safe without a synchronisation.
 */
export class DeviceBuffer {
  private holders = 1;

  constructor(
    readonly ptr: bigint,
    readonly bytes: number,
    private readonly release: Release,
  ) {}

  retain(): void {
    if (this.holders === 0) throw internalError('a freed device buffer was shared again');
    this.holders++;
  }

  drop(): void {
    if (this.holders === 0) throw internalError('a device buffer was freed twice');
    if (--this.holders === 0) this.release(this.ptr, this.bytes);
  }
}

/** A tensor in device memory: a typed window onto a DeviceBuffer. */
export class CudaTensor implements Tensor {
  disposed = false;
  /** Registered with the finalizer: only tensors that leave every tidy scope are (registering costs ~1 us, and a step makes ~900 tensors). */
  finalized = false;
  /** The device address (computed once: every launch reads it, and BigInt arithmetic allocates). */
  readonly ptr: bigint;

  constructor(
    readonly buffer: DeviceBuffer,
    readonly byteOffset: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    this.ptr = byteOffset === 0 ? buffer.ptr : buffer.ptr + BigInt(byteOffset);
  }

  get elements(): number {
    return elementCount(this.shape);
  }

  get bytes(): number {
    return this.elements * DTYPE_BYTES[this.dtype];
  }

  /** Elements per row (all dimensions after the first). */
  get rowElements(): number {
    return elementCount(this.shape.slice(1));
  }
}

export function asCuda(t: Tensor, what: string): CudaTensor {
  if (!(t instanceof CudaTensor)) throw invalidArgument(`${what}: the tensor does not belong to the CUDA backend`);
  if (t.disposed) throw invalidArgument(`${what}: the tensor was already disposed`);
  return t;
}

/** Every CudaTensor reachable in a tidy result: the tensor itself, or inside arrays and plain objects. */
function collectTensors(value: unknown, into: Set<CudaTensor>): void {
  if (value instanceof CudaTensor) into.add(value);
  else if (Array.isArray(value)) value.forEach((v) => collectTensors(v, into));
  else if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    Object.values(value).forEach((v) => collectTensors(v, into));
  }
}

/**
 * Tensor lifetimes. Tensors made inside `tidy` are disposed when it returns, except
 * what it returns, which moves to the enclosing scope (or to the caller, outside any
 * scope). Tensors made outside every scope (weights) live until disposed. A
 * finalizer frees what a caller forgets, but only when the garbage collector and the
 * event loop get to it, which a synchronous decode loop never allows: hence tidy.
 */
export class TensorLifetimes {
  private readonly scopes: Set<CudaTensor>[] = [];
  private live = 0;
  /** Tensors made by `untracked` (tables and stores that live as long as a model or a cache). */
  private readonly longLived = new Set<CudaTensor>();
  private untrackedDepth = 0;
  private readonly finalizer = new FinalizationRegistry<DeviceBuffer>((buffer) => buffer.drop());

  /** Tensors alive now (not disposed, not collected), those made by `untracked` aside: a leak check. */
  get liveTensors(): number {
    return this.live - this.longLived.size;
  }

  adopt(t: CudaTensor): CudaTensor {
    this.live++;
    if (this.untrackedDepth > 0) this.longLived.add(t);
    const scope = this.scopes.at(-1);
    if (scope) scope.add(t);
    else this.guard(t);
    return t;
  }

  /** A tensor no tidy scope will dispose: the finalizer frees it if its holder forgets to. */
  private guard(t: CudaTensor): void {
    if (t.finalized || t.disposed) return;
    t.finalized = true;
    this.finalizer.register(t, t.buffer, t);
  }

  dispose(t: CudaTensor): void {
    if (t.disposed) return;
    t.disposed = true;
    this.live--;
    this.longLived.delete(t);
    if (t.finalized) this.finalizer.unregister(t);
    this.scopes.at(-1)?.delete(t);
    t.buffer.drop();
  }

  /** Takes `t` out of every scope: it lives until disposed. */
  keep(t: CudaTensor): CudaTensor {
    for (const scope of this.scopes) scope.delete(t);
    this.guard(t);
    return t;
  }

  /** Runs `fn` outside every scope: what it makes lives until disposed (tables, pools). */
  untracked<T>(fn: () => T): T {
    const saved = this.scopes.splice(0);
    this.untrackedDepth++;
    try {
      return fn();
    } finally {
      this.untrackedDepth--;
      this.scopes.push(...saved);
    }
  }

  tidy<T>(fn: () => T): T {
    const scope = new Set<CudaTensor>();
    this.scopes.push(scope);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.scopes.pop();
      for (const t of scope) this.dispose(t);
      throw e;
    }
    this.scopes.pop();
    const kept = new Set<CudaTensor>();
    collectTensors(result, kept);
    const outer = this.scopes.at(-1);
    for (const t of scope) {
      if (!kept.has(t)) this.dispose(t);
      else if (outer) outer.add(t);
      else this.guard(t);
    }
    return result;
  }
}
