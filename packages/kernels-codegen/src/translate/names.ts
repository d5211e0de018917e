/**
 * Names that kernel code may not use as-is in C++ (keywords, and functions the
 * emitter itself calls) are renamed with a trailing underscore.
 */
const RESERVED = new Set(
  (
    'alignas alignof and asm auto bool break case catch char class const constexpr const_cast continue decltype default ' +
    'delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline int long ' +
    'mutable namespace new noexcept not nullptr operator or private protected public register reinterpret_cast return ' +
    'short signed sizeof static static_assert static_cast struct switch template this thread_local throw true try ' +
    'typedef typeid typename union unsigned using virtual void volatile wchar_t while xor ' +
    // names the emitter calls or CUDA defines
    'min max abs umin umax llmin llmax llabs expf logf sqrtf rsqrtf fabsf fmaxf fminf floorf ceilf tanhf sinf cosf ' +
    'powf exp2f log2f fmaf half2 arkvale threadIdx blockIdx blockDim gridDim warpSize assert printf'
  ).split(' '),
);

export function cppName(name: string): string {
  return RESERVED.has(name) || name.startsWith('__') ? `${name}_` : name;
}
