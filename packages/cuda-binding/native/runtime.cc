#include "runtime.h"

#include <atomic>

#include "errors.h"

namespace arkvale {
namespace {

std::atomic<uint64_t> syncs{0};

}  // namespace

Runtime& runtime() {
  static Runtime* state = new Runtime();
  return *state;
}

void init_runtime(int device, size_t staging_bytes) {
  Runtime& r = runtime();
  if (r.initialised) {
    if (device == r.device) return;
    throw Failure("init: already initialised on device " + std::to_string(r.device) +
                  "; one process drives one device (asked for device " + std::to_string(device) + ")");
  }
  int count = 0;
  check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount", "init");
  if (device >= count) {
    throw_range("init: device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " CUDA device" +
                (count == 1 ? "" : "s") + ")");
  }
  const std::string what = "init (device " + std::to_string(device) + ")";
  check_cuda(cudaSetDevice(device), "cudaSetDevice", what);
  // cudaFree(nullptr) creates the primary context now, so a broken device fails
  // here with a clear message rather than in the first allocation.
  check_cuda(cudaFree(nullptr), "cudaFree", what);
  check_cuda(cudaDeviceGetAttribute(&r.major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute", what);
  try {
    for (cudaStream_t& s : r.streams) {
      check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags", what);
    }
    r.ring.create(staging_bytes, "init (pinned staging ring of " + format_bytes(static_cast<double>(staging_bytes)) + ")");
  } catch (...) {
    // Leave nothing half made, so a retry (say with a smaller ring) starts clean.
    for (cudaStream_t& s : r.streams) {
      if (s != nullptr) cudaStreamDestroy(s);
      s = nullptr;
    }
    throw;
  }
  r.device = device;
  r.initialised = true;
}

void require_init(const char* fn) {
  if (!runtime().initialised) {
    throw Failure(std::string(fn) + ": CUDA is not initialised; call init(device, stagingBytes) first");
  }
}

cudaStream_t stream_of(int id, const char* fn) {
  require_init(fn);
  return runtime().streams[id];
}

void count_sync() { syncs.fetch_add(1, std::memory_order_relaxed); }

uint64_t sync_count() { return syncs.load(std::memory_order_relaxed); }

void sync_stream(cudaStream_t stream, const std::string& what) {
  count_sync();
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize", what);
}

void sync_event(cudaEvent_t event, const std::string& what) {
  count_sync();
  check_cuda(cudaEventSynchronize(event), "cudaEventSynchronize", what);
}

void sync_device(const std::string& what) {
  count_sync();
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize", what);
}

}  // namespace arkvale
