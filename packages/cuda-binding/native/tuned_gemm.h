// Decode products through cuBLASLt with an algorithm timed at first use
// (CudaBackendOptions.tunedProducts). cublasGemmEx takes the first of cuBLAS's
// heuristic candidates, and for the skinny products of a decode step (up to 64 rows
// against weights of 33-235 MB) another is often faster: on an H100, cuBLASLt's won
// on most Llama products, by up to 9% (docs/BENCHMARKS.md, twelfth session). Here the
// first call of each product shape times cublasGemmEx and each cuBLASLt candidate on
// the device and keeps the fastest for the process's life, so a shape's numbers never
// change after its first call, and a step captured into a graph runs what its eager
// issue ran.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "cublas.h"

namespace arkvale {

// The workspace the products may use (cuBLAS's, shared: both run on one stream at a time).
struct GemmWorkspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};

// Runs `c` with the algorithm chosen for its shape, choosing it first when this is the
// shape's first call: cublasGemmEx (through `gemm_ex`) and up to eight cuBLASLt
// candidates, each timed three times from a cold L2 into a scratch output. Returns false
// when the product is to go through cublasGemmEx: cuBLASLt is missing, beta is not 0
// (C is read), the shape's first call came while its stream was being captured
// (nothing can be timed then, so the shape keeps cublasGemmEx), or cublasGemmEx won.
bool tuned_gemm(const GemmCall& c, const GemmWorkspace& workspace, const std::function<void(const GemmCall&)>& gemm_ex);

// One shape's choice, for benchmarks to report.
struct TunedChoice {
  std::string what;       // the first call's `what`
  int m = 0, n = 0, k = 0;
  std::string algorithm;  // "cublasGemmEx", or "cublasLt #i" (i: the heuristic's rank)
  double us = 0;          // the chosen algorithm's time, the best of three (0: not timed)
  double gemm_ex_us = 0;  // cublasGemmEx's
  int candidates = 0;     // cuBLASLt candidates timed
};

std::vector<TunedChoice> tuned_choices();

}  // namespace arkvale
