#include "probe.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include "nvml.h"
#include "runtime.h"

namespace arkvale {
namespace {

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// libcuda.so.1 is the driver's user-space half; the static CUDA runtime loads it
// too, but asking first gives the clearest reason when it is missing.
bool driver_library(std::string* why) {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    *why = std::string("no NVIDIA driver found (libcuda.so.1 could not be loaded: ") + (err ? err : "unknown error") + ")";
    return false;
  }
  return true;  // kept open: the runtime uses it
}

std::string device_count_reason(cudaError_t err, int driver_version, int runtime_version) {
  switch (err) {
    case cudaErrorNoDevice:
      return "no CUDA device (the NVIDIA driver is installed but reports no GPU; check CUDA_VISIBLE_DEVICES)";
    case cudaErrorInsufficientDriver:
      if (driver_version == 0) return "no NVIDIA driver found";
      return "the NVIDIA driver supports CUDA " + version_text(driver_version) + " but the addon's runtime needs CUDA " +
             version_text(runtime_version) + ": update the driver";
    default:
      return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err);
  }
}

// Free memory without a context: NVML first; otherwise cudaMemGetInfo, which
// makes a context on the device (only when NVML is missing, which is rare).
void fill_memory(DeviceInfo* d) {
  if (nvml_memory(d->pci_bus_id.c_str(), &d->free_bytes, &d->total_bytes)) return;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) current = -1;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (cudaSetDevice(d->index) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    d->free_bytes = free_bytes;
  }
  if (current >= 0) cudaSetDevice(current);
  (void)cudaGetLastError();
}

DeviceInfo describe(int index) {
  DeviceInfo d;
  d.index = index;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) == cudaSuccess) {
    d.name = prop.name;
    d.total_bytes = prop.totalGlobalMem;
  }
  cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, index);
  cudaDeviceGetAttribute(&d.minor, cudaDevAttrComputeCapabilityMinor, index);
  cudaDeviceGetAttribute(&d.multiprocessors, cudaDevAttrMultiProcessorCount, index);
  cudaDeviceGetAttribute(&d.l2_bytes, cudaDevAttrL2CacheSize, index);
  cudaDeviceGetAttribute(&d.max_shared_per_block_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, index);
  char bus[32] = {};
  if (cudaDeviceGetPCIBusId(bus, sizeof bus, index) == cudaSuccess) d.pci_bus_id = bus;
  (void)cudaGetLastError();
  fill_memory(&d);
  return d;
}

}  // namespace

ProbeResult probe() {
  ProbeResult r;
  cudaRuntimeGetVersion(&r.runtime_version);
  if (!driver_library(&r.reason)) return r;
  cudaDriverGetVersion(&r.driver_version);
  r.driver_release = nvml_driver_release();
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (err != cudaSuccess) {
    r.reason = device_count_reason(err, r.driver_version, r.runtime_version);
    return r;
  }
  if (count == 0) {
    r.reason = "no CUDA device";
    return r;
  }
  for (int i = 0; i < count; i++) r.devices.push_back(describe(i));
  // Once init() holds a context, the runtime's own number for that device is exact.
  const Runtime& rt = runtime();
  if (rt.initialised && rt.device < count) {
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) r.devices[rt.device].free_bytes = free_bytes;
    (void)cudaGetLastError();
  }
  r.ok = true;
  return r;
}

}  // namespace arkvale
