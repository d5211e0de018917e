// The building blocks of every matrix product in the addon (the dense matmul and
// the two products inside causal attention), in the classic packed layout: A is
// copied into panels of MR rows, B into panels of NR columns, both interleaved by
// the summation index k, so the micro-kernel streams both with unit stride and
// keeps an MR x NR tile of C in registers. All templates are always-inline; see
// simd.h for how they get compiled once per instruction set.
#pragma once

#include <cstddef>

#include "simd.h"

namespace arkvale {

constexpr int round_up(int n, int m) { return (n + m - 1) / m * m; }

// Panels of MR rows of A (rows `lda` floats apart), k in [0, kc):
// out[panel][p][i] = a[(panel * MR + i) * lda + p], rows past `rows` zero.
template <class I>
ARKVALE_INLINE void pack_a(const float* a, size_t lda, int rows, int kc, float* out) {
  for (int r0 = 0; r0 < rows; r0 += I::MR) {
    const int mr = rows - r0 < I::MR ? rows - r0 : I::MR;
    for (int i = 0; i < I::MR; ++i) {
      const float* src = a + (r0 + i) * lda;
      if (i < mr) {
        for (int p = 0; p < kc; ++p) out[p * I::MR + i] = src[p];
      } else {
        for (int p = 0; p < kc; ++p) out[p * I::MR + i] = 0.0f;
      }
    }
    out += I::MR * kc;
  }
}

// Panels of NR columns of B^T from B stored [n][k] (weights in [out, in] layout,
// attention keys): out[panel][p][j] = b[(panel * NR + j) * ldb + p].
template <class I>
ARKVALE_INLINE void pack_b_nk(const float* b, size_t ldb, int cols, int kc, float* out) {
  for (int c0 = 0; c0 < cols; c0 += I::NR) {
    const int nr = cols - c0 < I::NR ? cols - c0 : I::NR;
    for (int j = 0; j < I::NR; ++j) {
      const float* src = b + (c0 + j) * ldb;
      if (j < nr) {
        for (int p = 0; p < kc; ++p) out[p * I::NR + j] = src[p];
      } else {
        for (int p = 0; p < kc; ++p) out[p * I::NR + j] = 0.0f;
      }
    }
    out += I::NR * kc;
  }
}

// Panels of NR columns from B stored [k][n] (attention values):
// out[panel][p][j] = b[p * ldb + panel * NR + j].
template <class I>
ARKVALE_INLINE void pack_b_kn(const float* b, size_t ldb, int kc, int cols, float* out) {
  for (int c0 = 0; c0 < cols; c0 += I::NR) {
    const int nr = cols - c0 < I::NR ? cols - c0 : I::NR;
    for (int p = 0; p < kc; ++p) {
      const float* src = b + p * ldb + c0;
      float* dst = out + p * I::NR;
      for (int j = 0; j < nr; ++j) dst[j] = src[j];
      for (int j = nr; j < I::NR; ++j) dst[j] = 0.0f;
    }
    out += I::NR * kc;
  }
}

// C[MR x NR] (+)= A panel x B panel over kc, C rows `ldc` apart.
template <class I>
ARKVALE_INLINE void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, float* c, size_t ldc,
                                 bool accumulate) {
  using V = typename I::V;
  constexpr int NV = I::NR / I::W;
  V acc[I::MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < I::MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int p = 0; p < kc; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = vload<I>(b + p * I::NR + v * I::W);
#pragma GCC unroll 8
    for (int i = 0; i < I::MR; ++i) {
      const float ai = a[p * I::MR + i];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] += bv[v] * ai;
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < I::MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      typename I::VU& dst = vat<I>(c + i * ldc + v * I::W);
      dst = accumulate ? dst + acc[i][v] : acc[i][v];
    }
  }
}

// C[rows x cols] (+)= packed A (rows x kc) x packed B (kc x cols), C rows `ldc`
// apart. Loop order keeps one B panel (kc x NR) in L1 while it meets every A
// panel, which stays in L2. Partial edge tiles go through a local buffer.
template <class I>
ARKVALE_INLINE void macro_kernel(int rows, int cols, int kc, const float* ap, const float* bp, float* c, size_t ldc,
                                 bool accumulate) {
  alignas(64) float edge[I::MR * I::NR];
  for (int c0 = 0; c0 < cols; c0 += I::NR) {
    const int nr = cols - c0 < I::NR ? cols - c0 : I::NR;
    const float* b_panel = bp + static_cast<size_t>(c0 / I::NR) * I::NR * kc;
    for (int r0 = 0; r0 < rows; r0 += I::MR) {
      const int mr = rows - r0 < I::MR ? rows - r0 : I::MR;
      const float* a_panel = ap + static_cast<size_t>(r0 / I::MR) * I::MR * kc;
      float* ct = c + r0 * ldc + c0;
      if (mr == I::MR && nr == I::NR) {
        micro_kernel<I>(kc, a_panel, b_panel, ct, ldc, accumulate);
        continue;
      }
      micro_kernel<I>(kc, a_panel, b_panel, edge, I::NR, false);
      for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; ++j) ct[i * ldc + j] = accumulate ? ct[i * ldc + j] + edge[i * I::NR + j] : edge[i * I::NR + j];
    }
  }
}

// Floats a packed A of `rows` x kc (or B of kc x `cols`) occupies.
template <class I>
constexpr size_t packed_a_size(int rows, int kc) {
  return static_cast<size_t>(round_up(rows, I::MR)) * kc;
}
template <class I>
constexpr size_t packed_b_size(int cols, int kc) {
  return static_cast<size_t>(round_up(cols, I::NR)) * kc;
}

}  // namespace arkvale
