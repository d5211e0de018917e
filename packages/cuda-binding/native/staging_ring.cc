#include "staging_ring.h"

#include "errors.h"
#include "runtime.h"

namespace arkvale {
namespace {

// Retiring finished pieces costs one cudaEventQuery each; do it only once this
// many are outstanding, so small uploads stay cheap.
constexpr size_t kRetireThreshold = 32;

}  // namespace

void StagingRing::create(size_t bytes, const std::string& what) {
  if (bytes == 0) throw_range("init: stagingBytes must be at least 1");
  void* host = nullptr;
  check_cuda(cudaHostAlloc(&host, bytes, cudaHostAllocPortable), "cudaHostAlloc", what);
  base_ = static_cast<unsigned char*>(host);
  space_ = RingSpace(bytes);
}

cudaEvent_t StagingRing::take_event(const std::string& what, uint64_t* token) {
  if (!idle_.empty()) {
    *token = idle_.back();
    idle_.pop_back();
    return events_[*token];
  }
  cudaEvent_t event = nullptr;
  // Ordering only: no timing, the cheaper kind of event.
  check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags", what);
  *token = events_.size();
  events_.push_back(event);
  return event;
}

void StagingRing::wait_for(uint64_t token, const std::string& what) {
  cudaEvent_t event = events_[token];
  const cudaError_t state = cudaEventQuery(event);
  if (state == cudaErrorNotReady) {
    sync_event(event, what + " (waiting for the staging ring)");
  } else if (state != cudaSuccess) {
    throw_cuda("cudaEventQuery", what + " (staging ring)", state);
  }
  idle_.push_back(token);
}

void StagingRing::retire_finished() {
  uint64_t token = 0;
  while (space_.oldest(&token)) {
    const cudaError_t state = cudaEventQuery(events_[token]);
    if (state == cudaErrorNotReady) return;
    // An error here resurfaces at the next wait on this event; not ours to report.
    if (state != cudaSuccess) (void)cudaGetLastError();
    space_.pop_oldest();
    idle_.push_back(token);
  }
}

unsigned char* StagingRing::reserve(size_t bytes, size_t* offset, const std::string& what) {
  if (space_.in_flight() >= kRetireThreshold) retire_finished();
  waits_.clear();
  *offset = space_.place(bytes, &waits_);
  for (uint64_t token : waits_) wait_for(token, what);
  return base_ + *offset;
}

void StagingRing::commit(size_t offset, size_t bytes, cudaStream_t stream, const std::string& what) {
  uint64_t token = 0;
  cudaEvent_t event = take_event(what, &token);
  const cudaError_t err = cudaEventRecord(event, stream);
  if (err != cudaSuccess) {
    idle_.push_back(token);
    throw_cuda("cudaEventRecord", what + " (staging ring)", err);
  }
  space_.commit(offset, bytes, token);
}

}  // namespace arkvale
