#include "device_memory.h"

#include <cuda_runtime_api.h>

#include "errors.h"
#include "runtime.h"

namespace arkvale {
namespace {

// Slabs straight from cudaMalloc. Out of memory is reported as `false` so the
// allocator can release its cache and retry; anything else is a real failure.
class CudaSlabs final : public SlabSource {
 public:
  std::string what = "alloc";

  bool allocate(size_t bytes, uintptr_t* base) override {
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: clear it so the next launch check does not see it
      return false;
    }
    check_cuda(err, "cudaMalloc", what + " (a slab of " + format_bytes(static_cast<double>(bytes)) + ")");
    *base = reinterpret_cast<uintptr_t>(ptr);
    return true;
  }

  void release(uintptr_t base, size_t bytes) override {
    count_sync();  // cudaFree synchronises the device
    check_cuda(cudaFree(reinterpret_cast<void*>(base)), "cudaFree",
               "releasing a cached slab of " + format_bytes(static_cast<double>(bytes)));
  }
};

CudaSlabs& slabs() {
  static CudaSlabs* source = new CudaSlabs();
  return *source;
}

[[noreturn]] void throw_out_of_memory(size_t bytes, const std::string& what) {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  (void)cudaGetLastError();
  std::string message = "out of device memory allocating " + format_bytes(static_cast<double>(bytes)) + " for " + what + ": ";
  if (known) {
    message += format_bytes(static_cast<double>(free_bytes)) + " free of " + format_bytes(static_cast<double>(total_bytes));
  } else {
    message += "free memory unknown";
  }
  message += " (cached by the allocator: " + format_bytes(static_cast<double>(device_allocator().cached_bytes())) + ")";
  throw Failure(message);
}

}  // namespace

CachingAllocator& device_allocator() {
  static CachingAllocator* allocator = new CachingAllocator(slabs());
  return *allocator;
}

uintptr_t device_alloc(size_t bytes, const std::string& what) {
  slabs().what = what;
  const uintptr_t ptr = device_allocator().allocate(bytes);
  if (ptr == 0) throw_out_of_memory(bytes, what);
  return ptr;
}

void device_free(uintptr_t ptr) {
  switch (device_allocator().free(ptr)) {
    case CachingAllocator::FreeResult::Ok:
      return;
    case CachingAllocator::FreeResult::DoubleFree:
      throw Failure("free: " + format_pointer(ptr) + " was already freed (double free)");
    case CachingAllocator::FreeResult::Interior:
      throw Failure("free: " + format_pointer(ptr) + " points inside an allocation, not at its start");
    case CachingAllocator::FreeResult::Unknown:
      break;
  }
  throw Failure("free: " + format_pointer(ptr) + " was not returned by alloc");
}

}  // namespace arkvale
