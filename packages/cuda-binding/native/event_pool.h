// The events JavaScript records, waits on and times, by small integer ids. Events
// are created on first need and reused after releaseEvent, so recording one in a
// decode step costs no cudaEventCreate. All are created with timing enabled, so
// any two can be passed to elapsedMs.
#pragma once

#include <cuda_runtime_api.h>

#include <vector>

namespace arkvale {

class EventPool {
 public:
  // Records a pooled event on `stream` and returns its id.
  int record(cudaStream_t stream);
  // The event of a recorded (not released) id; throws a RangeError naming `fn` otherwise.
  cudaEvent_t get(int id, const char* fn) const;
  void release(int id, const char* fn);
  size_t size() const { return events_.size(); }

 private:
  std::vector<cudaEvent_t> events_;
  std::vector<char> in_use_;
  std::vector<int> idle_;
};

EventPool& event_pool();

}  // namespace arkvale
