#include "cublas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

#include "device_memory.h"
#include "dl_open.h"
#include "errors.h"
#include "runtime.h"
#include "tuned_gemm.h"

namespace arkvale {
namespace {

// The cuBLAS declarations used, written out because this build has no cuBLAS
// headers. Values and prototypes checked against cublas_api.h of cuBLAS 13.0.0
// (github.com/leomaxwell972/CU13ToolKit_Includes, include/cublas_api.h at aa0473e):
// cublasStatus_t SUCCESS 0, NOT_INITIALIZED 1, ALLOC_FAILED 3, INVALID_VALUE 7,
// ARCH_MISMATCH 8, MAPPING_ERROR 11, EXECUTION_FAILED 13, INTERNAL_ERROR 14,
// NOT_SUPPORTED 15, LICENSE_ERROR 16; CUBLAS_OP_N 0, CUBLAS_OP_T 1;
// CUBLAS_COMPUTE_32F 68; CUBLAS_GEMM_DEFAULT -1; the _v2 entry points below.
// cudaDataType and libraryPropertyType come from library_types.h (in the toolkit).
using cublasStatus_t = int;
using cublasHandle_t = struct cublasContext*;
constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
constexpr int CUBLAS_OP_N = 0;
constexpr int CUBLAS_OP_T = 1;
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_GEMM_DEFAULT = -1;

struct StatusName {
  int code;
  const char* name;
};
constexpr StatusName kStatusNames[] = {
    {0, "CUBLAS_STATUS_SUCCESS"},          {1, "CUBLAS_STATUS_NOT_INITIALIZED"}, {3, "CUBLAS_STATUS_ALLOC_FAILED"},
    {7, "CUBLAS_STATUS_INVALID_VALUE"},    {8, "CUBLAS_STATUS_ARCH_MISMATCH"},   {11, "CUBLAS_STATUS_MAPPING_ERROR"},
    {13, "CUBLAS_STATUS_EXECUTION_FAILED"}, {14, "CUBLAS_STATUS_INTERNAL_ERROR"}, {15, "CUBLAS_STATUS_NOT_SUPPORTED"},
    {16, "CUBLAS_STATUS_LICENSE_ERROR"},
};

struct Api {
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*set_workspace)(cublasHandle_t, void*, size_t) = nullptr;  // optional (cuBLAS 11.5+)
  cublasStatus_t (*get_property)(libraryPropertyType, int*) = nullptr;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, int, int, int, int, int, const void*, const void*, cudaDataType, int,
                            const void*, cudaDataType, int, const void*, void*, cudaDataType, int, int, int) = nullptr;
};

struct Blas {
  BlasStatus status;
  Api api;
  cublasHandle_t handle = nullptr;
  cudaStream_t bound = nullptr;
  bool bound_once = false;
  uintptr_t workspace = 0;
  size_t workspace_bytes = 0;
};

std::vector<std::string> candidates() {
  std::vector<std::string> names;
  // ARKVALE_CUBLAS: a full path, for a bundle that ships its own copy.
  if (const char* path = std::getenv("ARKVALE_CUBLAS"); path != nullptr && *path != '\0') names.push_back(path);
  for (const char* n : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) names.push_back(n);
  return names;
}

void load(Blas* b) {
  void* lib = open_first(candidates(), &b->status.library, &b->status.reason);
  if (lib == nullptr) return;
  Api& a = b->api;
  const char* missing = nullptr;
  if (!bind_symbol(lib, "cublasCreate_v2", &a.create)) missing = "cublasCreate_v2";
  else if (!bind_symbol(lib, "cublasSetStream_v2", &a.set_stream)) missing = "cublasSetStream_v2";
  else if (!bind_symbol(lib, "cublasGetProperty", &a.get_property)) missing = "cublasGetProperty";
  else if (!bind_symbol(lib, "cublasGemmEx", &a.gemm_ex)) missing = "cublasGemmEx";
  if (missing != nullptr) {
    b->status.reason = b->status.library + " has no " + missing + " (too old a cuBLAS)";
    return;
  }
  bind_symbol(lib, "cublasSetWorkspace_v2", &a.set_workspace);
  int major = 0, minor = 0, patch = 0;
  a.get_property(MAJOR_VERSION, &major);
  a.get_property(MINOR_VERSION, &minor);
  a.get_property(PATCH_LEVEL, &patch);
  b->status.version = major * 10000 + minor * 100 + patch;
  b->status.loaded = true;
}

Blas& blas() {
  static Blas* b = [] {
    auto* created = new Blas();
    load(created);
    return created;
  }();
  return *b;
}

const char* status_name(cublasStatus_t s) {
  for (const StatusName& n : kStatusNames) {
    if (n.code == s) return n.name;
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

std::string shape(const GemmCall& c) {
  return "(m=" + std::to_string(c.m) + ", n=" + std::to_string(c.n) + ", k=" + std::to_string(c.k) + ")";
}

void check_blas(cublasStatus_t s, const char* call, const GemmCall& c) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Failure(std::string(call) + " failed in " + c.what + ": " + status_name(s) + " " + shape(c));
}

// The handle, bound to the call's stream. cublasSetStream resets the workspace to
// cuBLAS's own pool, so ours is set again after every rebinding; with our
// workspace cuBLAS allocates nothing during a launch, which graph capture needs.
cublasHandle_t handle_for(Blas& b, const GemmCall& c) {
  if (b.handle == nullptr) {
    if (b.api.set_workspace != nullptr && b.workspace == 0) {
      // cuBLAS's recommendation: 32 MiB on Hopper, 4 MiB before it.
      const size_t bytes = runtime().major >= 9 ? (size_t(32) << 20) : (size_t(4) << 20);
      b.workspace = device_alloc(bytes, "the cuBLAS workspace");
      b.workspace_bytes = bytes;
    }
    check_blas(b.api.create(&b.handle), "cublasCreate", c);
  }
  if (!b.bound_once || b.bound != c.stream) {
    check_blas(b.api.set_stream(b.handle, c.stream), "cublasSetStream", c);
    if (b.api.set_workspace != nullptr) {
      check_blas(b.api.set_workspace(b.handle, reinterpret_cast<void*>(b.workspace), b.workspace_bytes), "cublasSetWorkspace", c);
    }
    b.bound = c.stream;
    b.bound_once = true;
  }
  return b.handle;
}

}  // namespace

const BlasStatus& blas_status() { return blas().status; }

void gemm(const GemmCall& c) {
  Blas& b = blas();
  if (!b.status.loaded) throw Failure("cuBLAS is not available: " + b.status.reason);
  cublasHandle_t handle = handle_for(b, c);
  const auto gemm_ex = [&](const GemmCall& g) {
    check_blas(b.api.gemm_ex(handle, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.m, g.n, g.k,
                             &g.alpha, g.a, g.a_type, g.lda, g.b, g.b_type, g.ldb, &g.beta, g.c, g.c_type, g.ldc, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx", g);
  };
  if (c.tune && tuned_gemm(c, {reinterpret_cast<void*>(b.workspace), b.workspace_bytes}, gemm_ex)) return;
  gemm_ex(c);
}

}  // namespace arkvale
