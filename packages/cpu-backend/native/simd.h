// Vector types and small helpers shared by every kernel.
//
// Kernels are written once as always-inline templates over an "ISA" traits struct
// (GenericIsa or Avx2Isa) using GCC/Clang vector extensions, then instantiated
// inside thin wrapper functions: the generic wrapper compiles for the baseline
// target (SSE2 on x86-64, NEON on arm64), the AVX2 wrapper carries
// __attribute__((target("avx2,fma"))). Everything inlined into a wrapper is
// compiled for that wrapper's target, and nothing compiled for AVX2 is ever
// emitted out of line, so the addon runs on any x86-64 CPU and picks the AVX2
// path only where the CPU reports it (see isa.h).
//
// Helpers take and return vectors by reference, never by value: passing a 32-byte
// vector by value from a function compiled without AVX changes the calling
// convention (GCC's -Wpsabi), and references keep the code warning-free. After
// inlining there is no difference in the generated code.
#pragma once

#include <cstddef>
#include <cstdint>

#define ARKVALE_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) || defined(__i386__)
#define ARKVALE_HAVE_AVX2_PATH 1
#define ARKVALE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ARKVALE_HAVE_AVX2_PATH 0
#endif

namespace arkvale {

typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
// Same vectors with element alignment, for loads and stores at any float address.
typedef float f32x4u __attribute__((vector_size(16), aligned(4)));
typedef float f32x8u __attribute__((vector_size(32), aligned(4)));

// W: floats per vector. MR x NR: the GEMM micro-tile (MR rows of A times NR
// columns of B), sized so MR * NR / W accumulators plus NR / W loaded vectors
// and one broadcast fit the 16 vector registers of both targets.
struct GenericIsa {
  using V = f32x4;
  using VU = f32x4u;
  using VI = i32x4;
  static constexpr int W = 4;
  static constexpr int MR = 6;
  static constexpr int NR = 8;
};

struct Avx2Isa {
  using V = f32x8;
  using VU = f32x8u;
  using VI = i32x8;
  static constexpr int W = 8;
  static constexpr int MR = 6;
  static constexpr int NR = 16;
};

template <class I>
ARKVALE_INLINE const typename I::VU& vload(const float* p) {
  return *reinterpret_cast<const typename I::VU*>(p);
}

template <class I>
ARKVALE_INLINE typename I::VU& vat(float* p) {
  return *reinterpret_cast<typename I::VU*>(p);
}

template <class I>
ARKVALE_INLINE float hsum(const typename I::V& v) {
  float s = 0.0f;
  for (int i = 0; i < I::W; ++i) s += v[i];
  return s;
}

// exp(x) in place, Cephes-style: x = n ln2 + r with |r| <= ln2 / 2, a degree-6
// polynomial for exp(r) (relative error ~2e-7), then 2^n built in the exponent
// bits. Inputs below -87 (including -inf) give exactly 0: true results there are
// denormal, and denormals would send the attention sums down slow microcode
// paths for a contribution far below float32 precision anyway.
template <class I>
ARKVALE_INLINE void vexp_inplace(typename I::V& x) {
  using V = typename I::V;
  using VI = typename I::VI;
  const V lo = V{} - 87.0f;
  const V hi = V{} + 88.0f;
  const auto underflow = x < lo;
  V y = underflow ? lo : x;
  y = y > hi ? hi : y;
  // Adding 1.5 * 2^23 rounds y * log2(e) to an integer held in the mantissa.
  const V magic = V{} + 12582912.0f;
  const V t = y * 1.44269504088896341f + magic;
  const V n = t - magic;
  const V r = y - n * 0.693359375f + n * 2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // Vector casts between same-sized vector types reinterpret the bits.
  const VI exponent = (((VI)t - (VI)magic) + 127) << 23;
  x = underflow ? V{} : p * (V)exponent;
}

// exp(x[i]) for i < n, in place; n may be any size.
template <class I>
ARKVALE_INLINE void exp_row(float* x, int n) {
  using V = typename I::V;
  int i = 0;
  for (; i + I::W <= n; i += I::W) {
    V v = vload<I>(x + i);
    vexp_inplace<I>(v);
    vat<I>(x + i) = v;
  }
  if (i < n) {
    float tail[I::W];
    for (int j = 0; j < I::W; ++j) tail[j] = i + j < n ? x[i + j] : 0.0f;
    V v = vload<I>(tail);
    vexp_inplace<I>(v);
    for (int j = 0; i + j < n; ++j) x[i + j] = v[j];
  }
}

// Dot products of one row `a` with `R` rows starting at b (consecutive rows `ldb`
// floats apart), all of length k: out[r] = a . b[r].
template <class I, int R>
ARKVALE_INLINE void dot_rows(const float* a, const float* b, size_t ldb, int k, float* out) {
  using V = typename I::V;
  V acc[R];
  for (int r = 0; r < R; ++r) acc[r] = V{};
  int p = 0;
  for (; p + I::W <= k; p += I::W) {
    const V av = vload<I>(a + p);
    for (int r = 0; r < R; ++r) acc[r] += av * vload<I>(b + r * ldb + p);
  }
  for (int r = 0; r < R; ++r) {
    float s = hsum<I>(acc[r]);
    for (int q = p; q < k; ++q) s += a[q] * b[r * ldb + q];
    out[r] = s;
  }
}

// y[0..n) += sum over r < R of alpha[r] * x[r][0..n), the rows of x `ldx` apart.
template <class I, int R>
ARKVALE_INLINE void axpy_rows(const float* alpha, const float* x, size_t ldx, int n, float* y) {
  using V = typename I::V;
  int e = 0;
  for (; e + I::W <= n; e += I::W) {
    V acc = vload<I>(y + e);
    for (int r = 0; r < R; ++r) acc += vload<I>(x + r * ldx + e) * alpha[r];
    vat<I>(y + e) = acc;
  }
  for (; e < n; ++e) {
    float s = y[e];
    for (int r = 0; r < R; ++r) s += alpha[r] * x[r * ldx + e];
    y[e] = s;
  }
}

}  // namespace arkvale
