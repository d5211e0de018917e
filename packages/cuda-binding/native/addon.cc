// The entry point of arkvale_cuda.node: the CUDA runtime for @arkvale/cuda-binding
// (see src/native.ts for the JavaScript interface and its documentation).
#include <napi.h>

#include "bindings.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  arkvale::register_device(env, exports);
  arkvale::register_host(env, exports);
  arkvale::register_copies(env, exports);
  arkvale::register_events(env, exports);
  arkvale::register_kernels(env, exports);
  arkvale::register_graphs(env, exports);
  arkvale::register_blas(env, exports);
  arkvale::register_nccl(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(arkvale_cuda, Init)
