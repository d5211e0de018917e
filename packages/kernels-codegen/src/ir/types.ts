/** The DSL's type system as the translator and both emitters (CUDA, JS) see it. */

export const SCALAR_NAMES = ['f16', 'bf16', 'f32', 'i32', 'u32', 'i64', 'bool', 'u8'] as const;
export type ScalarName = (typeof SCALAR_NAMES)[number];

export type MemorySpace = 'global' | 'shared' | 'local';

export type DslType =
  | { readonly kind: 'scalar'; readonly name: ScalarName }
  /** A pointer (kernel and helper parameters, `offset(...)`). */
  | { readonly kind: 'pointer'; readonly space: MemorySpace; readonly elem: ScalarName; readonly readonly: boolean }
  /** Storage declared by `shared<T>(n)` or `local<T>(n)`; decays to a pointer when passed. */
  | { readonly kind: 'array'; readonly space: 'shared' | 'local'; readonly elem: ScalarName; readonly length: number }
  | { readonly kind: 'void' };

export type PointerType = Extract<DslType, { kind: 'pointer' }>;
export type ArrayType = Extract<DslType, { kind: 'array' }>;

export const scalar = (name: ScalarName): DslType => ({ kind: 'scalar', name });
export const VOID: DslType = { kind: 'void' };

export function isScalarName(s: string): s is ScalarName {
  return (SCALAR_NAMES as readonly string[]).includes(s);
}

export const isInteger = (s: ScalarName): boolean => s === 'i32' || s === 'u32' || s === 'i64';
export const isFloat16 = (s: ScalarName): boolean => s === 'f16' || s === 'bf16';
/** Storage-only types: converted explicitly before any arithmetic (16-bit floats, and u8 bytes). */
export const isStorageOnly = (s: ScalarName): boolean => isFloat16(s) || s === 'u8';
/** Types ordinary arithmetic works on (16-bit floats and bytes are storage types). */
export const isArithmetic = (s: ScalarName): boolean => s === 'f32' || isInteger(s);

export function sizeOf(s: ScalarName): number {
  switch (s) {
    case 'f16':
    case 'bf16':
      return 2;
    case 'i64':
      return 8;
    case 'bool':
    case 'u8':
      return 1;
    default:
      return 4;
  }
}

/** Element type of anything indexable, or undefined. */
export function elementOf(t: DslType): ScalarName | undefined {
  return t.kind === 'pointer' || t.kind === 'array' ? t.elem : undefined;
}

export function spaceOf(t: DslType): MemorySpace | undefined {
  return t.kind === 'pointer' || t.kind === 'array' ? t.space : undefined;
}

export function describeType(t: DslType): string {
  switch (t.kind) {
    case 'scalar':
      return t.name;
    case 'void':
      return 'void';
    case 'array':
      return `${t.space === 'shared' ? 'Shared' : 'Local'}<${t.elem}>[${t.length}]`;
    case 'pointer':
      return t.space === 'global' ? `${t.readonly ? 'GlobalIn' : 'Global'}<${t.elem}>` : `${t.space === 'shared' ? 'Shared' : 'Local'}<${t.elem}>`;
  }
}

export function sameType(a: DslType, b: DslType): boolean {
  return describeType(a) === describeType(b);
}
