// NCCL, opened at run time with dlopen as cuBLAS is (cublas.h): the addon builds where
// no NCCL is installed, and says clearly where it is missing. The communicator of a
// tensor-parallel rank (bind_nccl.cc) calls it through NcclApi.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace arkvale {

// The NCCL declarations used, written out because this build has no NCCL headers
// (nccl.h of NCCL 2.x): results (ncclSuccess 0), the 128-byte unique id passed by
// value, and the data types and the sum.
using ncclResult_t = int;
using ncclComm_t = struct ncclComm*;
struct ncclUniqueId {
  char internal[128];
};
constexpr ncclResult_t kNcclSuccess = 0;
enum NcclDataType : int { kNcclFloat16 = 6, kNcclFloat32 = 7, kNcclBfloat16 = 9 };
constexpr int kNcclSum = 0;

struct NcclApi {
  ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*all_reduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*all_gather)(const void*, void*, size_t, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*comm_destroy)(ncclComm_t) = nullptr;
  const char* (*get_error_string)(ncclResult_t) = nullptr;
};

struct NcclStatus {
  bool loaded = false;
  std::string library;  // the file that loaded, e.g. "libnccl.so.2" or ARKVALE_NCCL's path
  int version = 0;      // as ncclGetVersion: major * 10000 + minor * 100 + patch (NCCL 2.9+)
  std::string reason;   // why it is not loaded
  NcclApi api;          // set when loaded
};

// Loads on first call (then remembers; later calls' wheel_library is ignored); never
// throws. Tries ARKVALE_NCCL, then wheel_library (when not empty), then libnccl.so.2
// and libnccl.so on the library path.
const NcclStatus& nccl_status(const std::string& wheel_library);

}  // namespace arkvale
