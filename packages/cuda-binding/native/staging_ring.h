// The pinned staging ring that uploads go through: upload() copies the caller's
// bytes into the ring (so the caller may reuse its buffer at once) and enqueues an
// async host->device copy from there. Each piece gets an event; before a later
// piece overwrites ring bytes an earlier copy may still be reading, it waits for
// that event: cudaEventQuery first, cudaEventSynchronize (counted as a sync) only
// when the copy is still running. Downloads reuse the same bytes, synchronously.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <vector>

#include "ring_space.h"

namespace arkvale {

class StagingRing {
 public:
  StagingRing() : space_(0) {}
  // cudaHostAlloc of `bytes` (portable, not mapped: only the copy engines read it).
  void create(size_t bytes, const std::string& what);
  size_t capacity() const { return space_.capacity(); }

  // Room for `bytes` (1..capacity), waiting for in-flight copies that still read
  // any of it. Returns the host address and sets `offset`.
  unsigned char* reserve(size_t bytes, size_t* offset, const std::string& what);
  // After enqueuing a copy that reads [offset, offset + bytes) on `stream`.
  void commit(size_t offset, size_t bytes, cudaStream_t stream, const std::string& what);

 private:
  void wait_for(uint64_t token, const std::string& what);
  void retire_finished();
  cudaEvent_t take_event(const std::string& what, uint64_t* token);

  unsigned char* base_ = nullptr;
  RingSpace space_;
  std::vector<cudaEvent_t> events_;  // by token
  std::vector<uint64_t> idle_;       // tokens free for reuse
  std::vector<uint64_t> waits_;      // scratch for reserve
};

}  // namespace arkvale
