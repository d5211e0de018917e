import type { CudaAddon, GemmParams } from '../native.js';
import { CudaDevice, type ProductKernels } from '../backend/device.js';

/** A device that records launches (and cuBLAS gemms) and refuses anything that would wait for the GPU. */
export function fakeDevice(products: ProductKernels = {}): { d: CudaDevice; launches: string[] } {
  const launches: string[] = [];
  let next = 0x10000n;
  const refuse = (what: string) => () => {
    throw new Error(`${what} would synchronise`);
  };
  const addon = {
    alloc: (bytes: number) => {
      const p = next;
      next += BigInt(Math.ceil(bytes / 256) * 256);
      return p;
    },
    free: () => {},
    memset: () => {},
    launch: (name: string, grid: readonly number[], _params: Uint8Array, stream: number) => launches.push(`${name} [${grid.join(', ')}] on ${stream}`),
    gemm: (p: GemmParams) => launches.push(`gemm ${p.m} x ${p.n} x ${p.k} ${p.aType} -> ${p.cType} on ${p.stream}`),
    synchronize: refuse('synchronize'),
    download: refuse('download'),
  } as unknown as CudaAddon;
  return { d: new CudaDevice(addon, 'f16', 132, false, true, products), launches };
}
