// NCCL, opened at run time with dlopen as cuBLAS is (cublas.h): the addon builds where
// no NCCL is installed, and says clearly where it is missing. Only the status for now:
// tensor parallelism's communicator over it is not built yet (docs/DESIGN.md).
#pragma once

#include <string>

namespace arkvale {

struct NcclStatus {
  bool loaded = false;
  std::string library;  // the file that loaded, e.g. "libnccl.so.2" or ARKVALE_NCCL's path
  int version = 0;      // as ncclGetVersion: major * 10000 + minor * 100 + patch (NCCL 2.9+)
  std::string reason;   // why it is not loaded
};

// Loads on first call (then remembers; later calls' wheel_library is ignored); never
// throws. Tries ARKVALE_NCCL, then wheel_library (when not empty), then libnccl.so.2
// and libnccl.so on the library path.
const NcclStatus& nccl_status(const std::string& wheel_library);

}  // namespace arkvale
