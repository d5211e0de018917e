// Pinned, mapped host memory: hostAlloc, hostFree, hostView. The host page pool
// lives here; kernels reach it through the device alias of each block (recall
// reads it over the bus), and JavaScript through hostView's external ArrayBuffers.
#include <cuda_runtime_api.h>
#include <napi.h>

#include <map>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "js_args.h"
#include "runtime.h"

namespace arkvale {
namespace {

struct PinnedBlock {
  size_t bytes;
  uintptr_t device;
  // Weak references to the views handed out, detached by hostFree so a stale
  // view reads as empty instead of touching freed memory.
  std::vector<Napi::Reference<Napi::ArrayBuffer>> views;
};

// By host address. Never destroyed (see runtime.h).
std::map<uintptr_t, PinnedBlock>& blocks() {
  static auto* map = new std::map<uintptr_t, PinnedBlock>();
  return *map;
}

// The block containing [host, host + bytes), or end().
std::map<uintptr_t, PinnedBlock>::iterator containing(uintptr_t host, size_t bytes) {
  auto& map = blocks();
  auto it = map.upper_bound(host);
  if (it == map.begin()) return map.end();
  --it;
  if (host + bytes > it->first + it->second.bytes) return map.end();
  return it;
}

// hostAlloc(bytes, what): { host, device }
Napi::Value HostAlloc(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "hostAlloc");
  const size_t bytes = args.size(0, "bytes");
  const std::string what = args.string(1, "what");
  require_init("hostAlloc");
  if (bytes == 0) throw_range("hostAlloc: bytes must be at least 1 (for " + what + ")");
  void* host = nullptr;
  const cudaError_t err = cudaHostAlloc(&host, bytes, cudaHostAllocMapped | cudaHostAllocPortable);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    throw Failure("out of pinned host memory allocating " + format_bytes(static_cast<double>(bytes)) + " for " + what +
                  ": cudaHostAlloc: " + cudaGetErrorString(err));
  }
  check_cuda(err, "cudaHostAlloc", what + " (" + format_bytes(static_cast<double>(bytes)) + " pinned)");
  void* device = nullptr;
  const cudaError_t mapped = cudaHostGetDevicePointer(&device, host, 0);
  if (mapped != cudaSuccess) {
    cudaFreeHost(host);
    throw_cuda("cudaHostGetDevicePointer", what, mapped);
  }
  const auto host_address = reinterpret_cast<uintptr_t>(host);
  blocks()[host_address] = PinnedBlock{bytes, reinterpret_cast<uintptr_t>(device), {}};
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("host", Napi::BigInt::New(info.Env(), static_cast<uint64_t>(host_address)));
  o.Set("device", Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(device))));
  return o;
}

Napi::Value HostFree(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "hostFree");
  const auto host = static_cast<uintptr_t>(args.pointer(0, "host"));
  auto it = blocks().find(host);
  if (it == blocks().end()) throw Failure("hostFree: " + format_pointer(host) + " was not returned by hostAlloc (or was freed)");
  for (Napi::Reference<Napi::ArrayBuffer>& ref : it->second.views) {
    if (ref.IsEmpty()) continue;
    Napi::ArrayBuffer view = ref.Value();
    if (!view.IsEmpty() && !view.IsDetached()) view.Detach();
  }
  blocks().erase(it);
  count_sync();  // cudaFreeHost synchronises the device
  check_cuda(cudaFreeHost(reinterpret_cast<void*>(host)), "cudaFreeHost", "hostFree");
  return info.Env().Undefined();
}

// hostView(host, bytes): an ArrayBuffer over pinned memory, no copy. Valid until
// hostFree of its block, which detaches it.
Napi::Value HostView(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "hostView");
  const auto host = static_cast<uintptr_t>(args.pointer(0, "host"));
  const size_t bytes = args.size(1, "bytes");
  auto it = containing(host, bytes);
  if (it == blocks().end()) {
    throw_range("hostView: [" + format_pointer(host) + ", +" + std::to_string(bytes) + ") is not inside a block from hostAlloc");
  }
  Napi::ArrayBuffer view = Napi::ArrayBuffer::New(info.Env(), reinterpret_cast<void*>(host), bytes);
  std::vector<Napi::Reference<Napi::ArrayBuffer>>& views = it->second.views;
  // Drop references to views already collected, so a block viewed every step
  // does not grow this list without bound.
  if (views.size() >= 64) {
    std::vector<Napi::Reference<Napi::ArrayBuffer>> live;
    for (auto& ref : views) {
      if (!ref.IsEmpty() && !ref.Value().IsEmpty()) live.push_back(std::move(ref));
    }
    views.swap(live);
  }
  views.push_back(Napi::Weak(view));
  return view;
}

}  // namespace

void register_host(Napi::Env env, Napi::Object exports) {
  export_function<HostAlloc>(env, exports, "hostAlloc");
  export_function<HostFree>(env, exports, "hostFree");
  export_function<HostView>(env, exports, "hostView");
}

}  // namespace arkvale
