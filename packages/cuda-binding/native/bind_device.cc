// probe, init, memInfo, the device allocator and buildInfo.
#include <cuda_runtime_api.h>
#include <napi.h>

#include "bindings.h"
#include "device_memory.h"
#include "errors.h"
#include "js_args.h"
#include "probe.h"
#include "runtime.h"

#ifndef ARKVALE_CUDA_ARCHS
#define ARKVALE_CUDA_ARCHS ""
#endif
#ifndef ARKVALE_NVCC_VERSION
#define ARKVALE_NVCC_VERSION ""
#endif

namespace arkvale {
namespace {

Napi::Number num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

Napi::Object device_object(Napi::Env env, const DeviceInfo& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", num(env, d.index));
  o.Set("name", d.name);
  o.Set("totalBytes", num(env, static_cast<double>(d.total_bytes)));
  o.Set("freeBytes", num(env, static_cast<double>(d.free_bytes)));
  o.Set("major", num(env, d.major));
  o.Set("minor", num(env, d.minor));
  o.Set("multiprocessors", num(env, d.multiprocessors));
  o.Set("l2Bytes", num(env, d.l2_bytes));
  o.Set("maxSharedPerBlockOptin", num(env, d.max_shared_per_block_optin));
  o.Set("pciBusId", d.pci_bus_id);
  return o;
}

// probe(): never throws (a Node-API failure aside).
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ProbeResult r = probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", r.ok);
  if (!r.ok) o.Set("reason", r.reason);
  o.Set("driverVersion", num(env, r.driver_version));
  o.Set("runtimeVersion", num(env, r.runtime_version));
  if (!r.driver_release.empty()) o.Set("driverRelease", r.driver_release);
  Napi::Array devices = Napi::Array::New(env, r.devices.size());
  for (size_t i = 0; i < r.devices.size(); i++) devices.Set(static_cast<uint32_t>(i), device_object(env, r.devices[i]));
  o.Set("devices", devices);
  return o;
}

// init(device, stagingBytes)
Napi::Value Init(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "init");
  const int device = static_cast<int>(args.integer(0, "device", 0, 1023));
  const size_t staging = args.size(1, "stagingBytes");
  init_runtime(device, staging);
  return info.Env().Undefined();
}

Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  require_init("memInfo");
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo", "memInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", num(info.Env(), static_cast<double>(free_bytes)));
  o.Set("totalBytes", num(info.Env(), static_cast<double>(total_bytes)));
  return o;
}

// alloc(bytes, what): a bigint device address.
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "alloc");
  const size_t bytes = args.size(0, "bytes");
  const std::string what = args.string(1, "what");
  require_init("alloc");
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(device_alloc(bytes, what)));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "free");
  device_free(static_cast<uintptr_t>(args.pointer(0, "ptr")));
  return info.Env().Undefined();
}

Napi::Value AllocatorStatsFn(const Napi::CallbackInfo& info) {
  const AllocatorStats s = device_allocator().stats();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("reservedBytes", num(env, static_cast<double>(s.reserved_bytes)));
  o.Set("allocatedBytes", num(env, static_cast<double>(s.allocated_bytes)));
  o.Set("slabs", num(env, static_cast<double>(s.slabs)));
  o.Set("freeBlocks", num(env, static_cast<double>(s.free_blocks)));
  o.Set("cudaMallocCalls", num(env, static_cast<double>(s.source_calls)));
  return o;
}

Napi::Value ReleaseCached(const Napi::CallbackInfo& info) {
  device_allocator().release_cached();
  return info.Env().Undefined();
}

Napi::Value SyncCount(const Napi::CallbackInfo& info) { return num(info.Env(), static_cast<double>(sync_count())); }

// buildInfo(): what this binary was compiled for, so a copy without
// build/status.json (a bundle) still knows its architectures.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array archs = Napi::Array::New(env);
  std::string list = ARKVALE_CUDA_ARCHS;
  uint32_t n = 0;
  for (size_t start = 0; start < list.size();) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) archs.Set(n++, list.substr(start, end - start));
    start = end + 1;
  }
  o.Set("archs", archs);
  o.Set("nvcc", std::string(ARKVALE_NVCC_VERSION));
  int runtime_version = 0;
  cudaRuntimeGetVersion(&runtime_version);
  o.Set("runtimeVersion", num(env, runtime_version));
  return o;
}

}  // namespace

void register_device(Napi::Env env, Napi::Object exports) {
  export_function<Probe>(env, exports, "probe");
  export_function<Init>(env, exports, "init");
  export_function<MemInfo>(env, exports, "memInfo");
  export_function<Alloc>(env, exports, "alloc");
  export_function<Free>(env, exports, "free");
  export_function<AllocatorStatsFn>(env, exports, "allocatorStats");
  export_function<ReleaseCached>(env, exports, "releaseCached");
  export_function<SyncCount>(env, exports, "syncCount");
  export_function<BuildInfo>(env, exports, "buildInfo");
}

}  // namespace arkvale
