/** Intrinsics exist at run time only so kernel modules link; calling one is a mistake. */
export function translatorOnly(name: string): never {
  throw new Error(`${name}() is a kernel DSL intrinsic: kernels run only through the translator (CUDA) or the emulator`);
}
