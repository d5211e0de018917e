// The generated kernels (arkvale_registry.h from @arkvale/kernels-codegen):
// kernels() lists them, launch() runs one from a packed parameter buffer,
// dependentLaunch() says whether launches overlap the kernel before them.
#include <cuda_runtime_api.h>
#include <napi.h>

#include <cstring>
#include <string>
#include <unordered_map>

#include "arkvale_registry.h"
#include "bindings.h"
#include "errors.h"
#include "js_args.h"
#include "runtime.h"

namespace arkvale {
namespace {

// The packed buffer is copied here before launch: cudaLaunchKernel reads each
// argument through args[i], and a JS Uint8Array promises no alignment.
constexpr size_t kMaxParamBytes = 4096;
constexpr unsigned kMaxParams = 256;

const ArkvaleKernel* find_kernel(const std::string& name) {
  // Launches are hot: remember each name's entry once found.
  static auto* cache = new std::unordered_map<std::string, const ArkvaleKernel*>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second;
  const ArkvaleKernel* k = arkvale_find_kernel(name.c_str());
  if (k != nullptr) cache->emplace(name, k);
  return k;
}

Napi::Value Kernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env, arkvale_kernel_count);
  for (unsigned i = 0; i < arkvale_kernel_count; i++) {
    const ArkvaleKernel& k = arkvale_kernels[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", k.name);
    o.Set("blockThreads", Napi::Number::New(env, k.blockThreads));
    o.Set("paramBytes", Napi::Number::New(env, k.paramBytes));
    o.Set("dynamicSharedBytes", Napi::Number::New(env, k.dynamicSharedBytes));
    list.Set(i, o);
  }
  return list;
}

// A kernel with more than 48 KB of shared memory asks for it at launch, and CUDA wants
// the function opted in to that much once first (cudaFuncSetAttribute; not a stream
// operation, so a launch inside a graph capture may do it too).
void opt_in_shared(const ArkvaleKernel* k, const std::string& what) {
  static auto* opted = new std::unordered_map<const ArkvaleKernel*, bool>();
  if (k->dynamicSharedBytes == 0 || opted->count(k) > 0) return;
  check_cuda(cudaFuncSetAttribute(k->fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(k->dynamicSharedBytes)),
             "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)", what);
  opted->emplace(k, true);
}

std::string grid_text(const unsigned g[3]) {
  return std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]);
}

// launch(name, [gx, gy, gz], params, stream)
Napi::Value Launch(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "launch");
  const std::string name = args.string(0, "name");
  if (!args.at(1).IsArray() || args.at(1).As<Napi::Array>().Length() != 3) throw_type("launch: grid must be [x, y, z]");
  Napi::Array grid_array = args.at(1).As<Napi::Array>();
  unsigned grid[3];
  const char* axis[3] = {"grid[0]", "grid[1]", "grid[2]"};
  const int64_t limits[3] = {INT32_MAX, 65535, 65535};
  for (uint32_t i = 0; i < 3; i++) grid[i] = static_cast<unsigned>(to_integer(grid_array.Get(i), {"launch", axis[i]}, 1, limits[i]));
  const Bytes params = args.bytes(2, "params");
  if (!args.at(2).IsTypedArray() || args.at(2).As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw_type("launch: params must be a Uint8Array (the launch surface's pack())");
  }
  const int stream_id = args.stream(3);
  const ArkvaleKernel* k = find_kernel(name);
  if (k == nullptr) {
    throw Failure("launch: no kernel named '" + name + "' in this build (" + std::to_string(arkvale_kernel_count) +
                  " kernels; a shape outside the prebuilt matrix needs arkvale codegen --merge and a rebuild)");
  }
  if (params.size != k->paramBytes) {
    throw_range("launch: " + name + " takes " + std::to_string(k->paramBytes) + " bytes of parameters, got " +
                std::to_string(params.size));
  }
  if (k->paramBytes > kMaxParamBytes || k->paramCount > kMaxParams) throw Failure("launch: " + name + " has too many parameters");
  cudaStream_t stream = stream_of(stream_id, "launch");
  alignas(16) unsigned char packed[kMaxParamBytes];
  if (params.size > 0) std::memcpy(packed, params.data, params.size);
  void* slots[kMaxParams];
  for (unsigned i = 0; i < k->paramCount; i++) slots[i] = packed + k->paramOffsets[i];
  const std::string what = "launch " + name + " (grid " + grid_text(grid) + ", block " + std::to_string(k->blockThreads) + ")";
  opt_in_shared(k, what);
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(grid[0], grid[1], grid[2]);
  config.blockDim = dim3(k->blockThreads);
  config.dynamicSmemBytes = k->dynamicSharedBytes;
  config.stream = stream;
  // Programmatic dependent launch: the kernel may be scheduled while the one before it
  // finishes; every generated kernel waits for that one's results first
  // (arkvale::grid_dependency_wait), so only the launch gap overlaps.
  cudaLaunchAttribute attribute = {};
  if (runtime().dependent_launch) {
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  check_cuda(cudaLaunchKernelExC(&config, k->fn, slots), "cudaLaunchKernelExC", what);
  check_cuda(cudaGetLastError(), "cudaLaunchKernelExC", what);
  return info.Env().Undefined();
}

// dependentLaunch(on?): sets (with an argument) and returns whether generated kernels
// launch as programmatic dependents of the kernel before them. Only sm_90 and later
// have it: there it stays false.
Napi::Value DependentLaunch(const Napi::CallbackInfo& info) {
  require_init("dependentLaunch");
  Runtime& r = runtime();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsBoolean()) throw_type("dependentLaunch: on must be a boolean");
    r.dependent_launch = info[0].As<Napi::Boolean>().Value() && r.major >= 9;
  }
  return Napi::Boolean::New(info.Env(), r.dependent_launch);
}

}  // namespace

void register_kernels(Napi::Env env, Napi::Object exports) {
  export_function<Kernels>(env, exports, "kernels");
  export_function<Launch>(env, exports, "launch");
  export_function<DependentLaunch>(env, exports, "dependentLaunch");
}

}  // namespace arkvale
