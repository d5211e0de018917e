// CUDA graphs: capture a stream's work once, replay it with one launch.
#include <cuda_runtime_api.h>
#include <napi.h>

#include <map>

#include "bindings.h"
#include "errors.h"
#include "js_args.h"
#include "runtime.h"

namespace arkvale {
namespace {

struct Graphs {
  std::map<int, cudaGraphExec_t> instances;
  int next_id = 1;
};

Graphs& graphs() {
  static auto* g = new Graphs();
  return *g;
}

cudaGraphExec_t graph_of(int id, const char* fn) {
  auto it = graphs().instances.find(id);
  if (it == graphs().instances.end()) throw_range(std::string(fn) + ": graph " + std::to_string(id) + " does not exist (destroyed?)");
  return it->second;
}

// beginCapture(stream): thread-local mode, so calls that would break the capture
// are refused on this thread only.
Napi::Value BeginCapture(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "beginCapture");
  const int id = args.stream(0);
  check_cuda(cudaStreamBeginCapture(stream_of(id, "beginCapture"), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture",
             "beginCapture (stream " + std::to_string(id) + ")");
  return info.Env().Undefined();
}

// endCapture(stream): instantiates what was captured and returns a graph id.
Napi::Value EndCapture(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "endCapture");
  const int id = args.stream(0);
  const std::string what = "endCapture (stream " + std::to_string(id) + ")";
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamEndCapture(stream_of(id, "endCapture"), &graph), "cudaStreamEndCapture", what);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);  // the instance keeps what it needs
  check_cuda(err, "cudaGraphInstantiate", what);
  const int graph_id = graphs().next_id++;
  graphs().instances[graph_id] = exec;
  return Napi::Number::New(info.Env(), graph_id);
}

Napi::Value LaunchGraph(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "launchGraph");
  const int id = static_cast<int>(args.integer(0, "graph", 0, INT32_MAX));
  cudaStream_t stream = stream_of(args.stream(1), "launchGraph");
  check_cuda(cudaGraphLaunch(graph_of(id, "launchGraph"), stream), "cudaGraphLaunch", "launchGraph (graph " + std::to_string(id) + ")");
  return info.Env().Undefined();
}

Napi::Value DestroyGraph(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "destroyGraph");
  const int id = static_cast<int>(args.integer(0, "graph", 0, INT32_MAX));
  cudaGraphExec_t exec = graph_of(id, "destroyGraph");
  graphs().instances.erase(id);
  check_cuda(cudaGraphExecDestroy(exec), "cudaGraphExecDestroy", "destroyGraph (graph " + std::to_string(id) + ")");
  return info.Env().Undefined();
}

}  // namespace

void register_graphs(Napi::Env env, Napi::Object exports) {
  export_function<BeginCapture>(env, exports, "beginCapture");
  export_function<EndCapture>(env, exports, "endCapture");
  export_function<LaunchGraph>(env, exports, "launchGraph");
  export_function<DestroyGraph>(env, exports, "destroyGraph");
}

}  // namespace arkvale
