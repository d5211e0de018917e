// cuBLAS, opened at run time with dlopen so the addon builds where no cuBLAS is
// installed (this repository's CI) and reports clearly where it is missing.
// Dense products go through cublasGemmEx with f32 accumulation, or, for a call with
// `tune`, through the algorithm tuned_gemm.h timed fastest for its shape.
#pragma once

#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstdint>
#include <string>

namespace arkvale {

struct BlasStatus {
  bool loaded = false;
  std::string library;  // the file that loaded, e.g. "libcublas.so.13"
  int version = 0;      // major * 10000 + minor * 100 + patch, as CUBLAS_VERSION
  std::string reason;   // why it is not loaded
};

// Loads on first call (then remembers); never throws.
const BlasStatus& blas_status();

// Column-major C = alpha * op(A) op(B) + beta * C, as cublasGemmEx.
struct GemmCall {
  bool trans_a = false;
  bool trans_b = false;
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  cudaDataType a_type = CUDA_R_32F;
  int lda = 0;
  const void* b = nullptr;
  cudaDataType b_type = CUDA_R_32F;
  int ldb = 0;
  void* c = nullptr;
  cudaDataType c_type = CUDA_R_32F;
  int ldc = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  cudaStream_t stream = nullptr;
  std::string what;
  // Through the algorithm timed fastest at the shape's first call (tuned_gemm.h).
  bool tune = false;
};

// Throws `cuBLAS is not available: <reason>` when the library is missing, and
// `cublasGemmEx failed in <what>: CUBLAS_STATUS_... (m=.., n=.., k=..)` on failure.
void gemm(const GemmCall& call);

}  // namespace arkvale
