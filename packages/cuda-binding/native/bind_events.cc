// Ordering and timing across the three streams: recordEvent, waitEvent,
// eventDone, synchronizeEvent, releaseEvent, synchronize, elapsedMs; profilerRange for profilers.
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <napi.h>

#include "bindings.h"
#include "errors.h"
#include "event_pool.h"
#include "js_args.h"
#include "runtime.h"

namespace arkvale {
namespace {

int event_id(const JsArgs& args, size_t i, const char* name) { return static_cast<int>(args.integer(i, name, 0, INT32_MAX)); }

// recordEvent(stream): an event id.
Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "recordEvent");
  cudaStream_t stream = stream_of(args.stream(0), "recordEvent");
  return Napi::Number::New(info.Env(), event_pool().record(stream));
}

// waitEvent(stream, event): later work on `stream` waits for the event (on the device).
Napi::Value WaitEvent(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "waitEvent");
  cudaStream_t stream = stream_of(args.stream(0), "waitEvent");
  cudaEvent_t event = event_pool().get(event_id(args, 1, "event"), "waitEvent");
  check_cuda(cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent", "waitEvent");
  return info.Env().Undefined();
}

// eventDone(event): cudaEventQuery; never blocks.
Napi::Value EventDone(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "eventDone");
  cudaEvent_t event = event_pool().get(event_id(args, 0, "event"), "eventDone");
  const cudaError_t state = cudaEventQuery(event);
  if (state == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return Napi::Boolean::New(info.Env(), false);
  }
  check_cuda(state, "cudaEventQuery", "eventDone");
  return Napi::Boolean::New(info.Env(), true);
}

// synchronizeEvent(event): the host waits for the event's work, and for nothing issued
// after it (a read of one step's tokens while the next step runs). Counted.
Napi::Value SynchronizeEvent(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "synchronizeEvent");
  cudaEvent_t event = event_pool().get(event_id(args, 0, "event"), "synchronizeEvent");
  sync_event(event, "synchronizeEvent");
  return info.Env().Undefined();
}

Napi::Value ReleaseEvent(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "releaseEvent");
  event_pool().release(event_id(args, 0, "event"), "releaseEvent");
  return info.Env().Undefined();
}

// synchronize(stream?): one stream, or the whole device without one. Counted.
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "synchronize");
  if (args.has(0)) {
    const int id = args.stream(0);
    sync_stream(stream_of(id, "synchronize"), "synchronize (stream " + std::to_string(id) + ")");
  } else {
    require_init("synchronize");
    sync_device("synchronize (device)");
  }
  return info.Env().Undefined();
}

// elapsedMs(start, end): both events must have completed (see eventDone).
Napi::Value ElapsedMs(const Napi::CallbackInfo& info) {
  const JsArgs args(info, "elapsedMs");
  cudaEvent_t start = event_pool().get(event_id(args, 0, "start"), "elapsedMs");
  cudaEvent_t end = event_pool().get(event_id(args, 1, "end"), "elapsedMs");
  float ms = 0;
  check_cuda(cudaEventElapsedTime(&ms, start, end), "cudaEventElapsedTime", "elapsedMs");
  return Napi::Number::New(info.Env(), ms);
}

// profilerRange(on): cudaProfilerStart / cudaProfilerStop, the range a profiler run
// with --profile-from-start off collects (Nsight Compute over chosen decode steps).
Napi::Value ProfilerRange(const Napi::CallbackInfo& info) {
  require_init("profilerRange");
  const bool on = info.Length() > 0 && info[0].ToBoolean().Value();
  check_cuda(on ? cudaProfilerStart() : cudaProfilerStop(), on ? "cudaProfilerStart" : "cudaProfilerStop", "profilerRange");
  return info.Env().Undefined();
}

}  // namespace

void register_events(Napi::Env env, Napi::Object exports) {
  export_function<RecordEvent>(env, exports, "recordEvent");
  export_function<WaitEvent>(env, exports, "waitEvent");
  export_function<EventDone>(env, exports, "eventDone");
  export_function<SynchronizeEvent>(env, exports, "synchronizeEvent");
  export_function<ReleaseEvent>(env, exports, "releaseEvent");
  export_function<Synchronize>(env, exports, "synchronize");
  export_function<ElapsedMs>(env, exports, "elapsedMs");
  export_function<ProfilerRange>(env, exports, "profilerRange");
}

}  // namespace arkvale
