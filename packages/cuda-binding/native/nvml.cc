#include "nvml.h"

#include <dlfcn.h>

#include "dl_open.h"

namespace arkvale {
namespace {

// The few NVML declarations used, written out because the headers are not part
// of the CUDA toolkit this builds with. Checked against nvml.h of CUDA 13.0
// (github.com/leomaxwell972/CU13ToolKit_Includes, include/nvml.h at aa0473e):
// NVML_SUCCESS = 0, nvmlMemory_t = { total, free, used } as unsigned long long,
// nvmlInit is nvmlInit_v2 and nvmlDeviceGetHandleByPciBusId is its _v2.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr unsigned int kDriverVersionBuffer = 80;  // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE

struct Nvml {
  bool ready = false;
  nvmlReturn_t (*get_handle)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*get_memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*driver_version)(char*, unsigned int) = nullptr;
};

// Opened and initialised once; never shut down (the process may probe again).
const Nvml& nvml() {
  static const Nvml* loaded = [] {
    auto* n = new Nvml();
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return n;
    nvmlReturn_t (*init)() = nullptr;
    if (!bind_symbol(lib, "nvmlInit_v2", &init) || !bind_symbol(lib, "nvmlDeviceGetHandleByPciBusId_v2", &n->get_handle) ||
        !bind_symbol(lib, "nvmlDeviceGetMemoryInfo", &n->get_memory) || !bind_symbol(lib, "nvmlSystemGetDriverVersion", &n->driver_version)) {
      return n;
    }
    n->ready = init() == NVML_SUCCESS;
    return n;
  }();
  return *loaded;
}

}  // namespace

bool nvml_memory(const char* pci_bus_id, uint64_t* free_bytes, uint64_t* total_bytes) {
  const Nvml& n = nvml();
  if (!n.ready) return false;
  nvmlDevice_t device = nullptr;
  nvmlMemory_t memory{};
  if (n.get_handle(pci_bus_id, &device) != NVML_SUCCESS || n.get_memory(device, &memory) != NVML_SUCCESS) return false;
  *free_bytes = memory.free;
  *total_bytes = memory.total;
  return true;
}

std::string nvml_driver_release() {
  const Nvml& n = nvml();
  if (!n.ready) return "";
  char version[kDriverVersionBuffer] = {};
  if (n.driver_version(version, sizeof version) != NVML_SUCCESS) return "";
  return version;
}

}  // namespace arkvale
