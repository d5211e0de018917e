#include "event_pool.h"

#include <string>

#include "errors.h"

namespace arkvale {

EventPool& event_pool() {
  static EventPool* pool = new EventPool();
  return *pool;
}

int EventPool::record(cudaStream_t stream) {
  int id;
  if (!idle_.empty()) {
    id = idle_.back();
    idle_.pop_back();
  } else {
    cudaEvent_t event = nullptr;
    check_cuda(cudaEventCreateWithFlags(&event, cudaEventDefault), "cudaEventCreateWithFlags", "recordEvent");
    id = static_cast<int>(events_.size());
    events_.push_back(event);
    in_use_.push_back(0);
  }
  const cudaError_t err = cudaEventRecord(events_[id], stream);
  if (err != cudaSuccess) {
    idle_.push_back(id);
    throw_cuda("cudaEventRecord", "recordEvent", err);
  }
  in_use_[id] = 1;
  return id;
}

cudaEvent_t EventPool::get(int id, const char* fn) const {
  if (id < 0 || static_cast<size_t>(id) >= events_.size() || !in_use_[id]) {
    throw_range(std::string(fn) + ": event " + std::to_string(id) + " is not a recorded event (never recorded, or released)");
  }
  return events_[id];
}

void EventPool::release(int id, const char* fn) {
  get(id, fn);
  in_use_[id] = 0;
  idle_.push_back(id);
}

}  // namespace arkvale
