// The process-wide CUDA state of the addon: the device, its three streams, the
// staging ring and the synchronisation counter. One device per process, used from
// the JavaScript thread that loaded the addon (CUDA's current device is per host
// thread). The state is created once and never destroyed: tearing it down in
// static destructors would race the CUDA runtime's own teardown at exit.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "staging_ring.h"

namespace arkvale {

// Stream ids as JavaScript passes them.
enum StreamId : int { kCompute = 0, kDeviceToHost = 1, kHostToDevice = 2, kStreamCount = 3 };

struct Runtime {
  bool initialised = false;
  int device = -1;
  int major = 0;  // compute capability of the device
  // Generated kernels launch with programmatic stream serialization (sm_90+; dependentLaunch()).
  bool dependent_launch = false;
  cudaStream_t streams[kStreamCount] = {};
  StagingRing ring;
};

Runtime& runtime();

// cudaSetDevice, the three non-blocking streams and a pinned staging ring of
// `staging_bytes`. A second call for the same device does nothing; another device
// throws (one device per process).
void init_runtime(int device, size_t staging_bytes);

// Throws unless init_runtime ran, naming `fn`.
void require_init(const char* fn);

// The stream of an id (0..2); requires init.
cudaStream_t stream_of(int id, const char* fn);

// Every host-blocking synchronisation the addon performs goes through these, so
// syncCount() sees it. `what` names the operation in error messages.
void sync_stream(cudaStream_t stream, const std::string& what);
void sync_event(cudaEvent_t event, const std::string& what);
void sync_device(const std::string& what);
// For calls that synchronise implicitly (cudaFree, cudaFreeHost).
void count_sync();
uint64_t sync_count();

}  // namespace arkvale
