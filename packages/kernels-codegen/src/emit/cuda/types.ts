import type { DslType, ScalarName } from '../../ir/types.js';

const CUDA_SCALAR: Record<ScalarName, string> = {
  f16: '__half',
  bf16: '__nv_bfloat16',
  f32: 'float',
  i32: 'int',
  u32: 'unsigned int',
  i64: 'long long',
  bool: 'bool',
  u8: 'unsigned char',
};

export const cudaScalar = (s: ScalarName): string => CUDA_SCALAR[s];

/** `float`, `const __half*`, ... for declarations and parameters. */
export function cudaType(t: DslType): string {
  switch (t.kind) {
    case 'scalar':
      return CUDA_SCALAR[t.name];
    case 'pointer':
      return `${t.readonly ? 'const ' : ''}${CUDA_SCALAR[t.elem]}*`;
    case 'array':
      return `${CUDA_SCALAR[t.elem]}*`;
    case 'void':
      return 'void';
  }
}
