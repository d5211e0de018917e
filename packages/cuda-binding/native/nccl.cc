#include "nccl.h"

#include "dl_open.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

namespace arkvale {
namespace {

// The entry points a communicator needs, checked present so that a library too old or
// not NCCL is refused (ncclGetVersion is checked first).
constexpr const char* kRequired[] = {"ncclGetUniqueId", "ncclCommInitRank", "ncclAllReduce", "ncclAllGather", "ncclCommDestroy", "ncclGetErrorString"};

std::vector<std::string> candidates(const std::string& wheel_library) {
  std::vector<std::string> names;
  // ARKVALE_NCCL: a full path, chosen by the user.
  if (const char* path = std::getenv("ARKVALE_NCCL"); path != nullptr && *path != '\0') names.push_back(path);
  // The nvidia-nccl wheel's lib/libnccl.so.2, as the JavaScript side found it.
  if (!wheel_library.empty()) names.push_back(wheel_library);
  for (const char* n : {"libnccl.so.2", "libnccl.so"}) names.push_back(n);
  return names;
}

void load(NcclStatus* s, const std::string& wheel_library) {
  void* lib = open_first(candidates(wheel_library), &s->library, &s->reason);
  if (lib == nullptr) return;
  auto get_version = reinterpret_cast<ncclResult_t (*)(int*)>(dlsym(lib, "ncclGetVersion"));
  if (get_version == nullptr) {
    s->reason = s->library + " has no ncclGetVersion (not NCCL, or too old)";
    return;
  }
  for (const char* name : kRequired) {
    if (dlsym(lib, name) == nullptr) {
      s->reason = s->library + " has no " + name + " (too old an NCCL)";
      return;
    }
  }
  int version = 0;
  if (get_version(&version) != kNcclSuccess) {
    s->reason = s->library + ": ncclGetVersion failed";
    return;
  }
  s->version = version;
  NcclApi& api = s->api;
  api.get_unique_id = reinterpret_cast<decltype(api.get_unique_id)>(dlsym(lib, "ncclGetUniqueId"));
  api.comm_init_rank = reinterpret_cast<decltype(api.comm_init_rank)>(dlsym(lib, "ncclCommInitRank"));
  api.all_reduce = reinterpret_cast<decltype(api.all_reduce)>(dlsym(lib, "ncclAllReduce"));
  api.all_gather = reinterpret_cast<decltype(api.all_gather)>(dlsym(lib, "ncclAllGather"));
  api.comm_destroy = reinterpret_cast<decltype(api.comm_destroy)>(dlsym(lib, "ncclCommDestroy"));
  api.get_error_string = reinterpret_cast<decltype(api.get_error_string)>(dlsym(lib, "ncclGetErrorString"));
  s->loaded = true;
}

}  // namespace

const NcclStatus& nccl_status(const std::string& wheel_library) {
  static NcclStatus* s = [&] {
    auto* created = new NcclStatus();
    load(created, wheel_library);
    return created;
  }();
  return *s;
}

}  // namespace arkvale
