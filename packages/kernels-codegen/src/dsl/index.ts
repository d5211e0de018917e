/** The kernel DSL: import from here in kernel source (`@arkvale/kernels-codegen/dsl`). */
export * from './scalars.js';
export type { Global, GlobalIn, Shared, Local, Readable, Writable, Dim3 } from './types.js';
export * from './intrinsics.js';
