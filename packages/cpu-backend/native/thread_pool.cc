#include "thread_pool.h"

#include <algorithm>

namespace arkvale {

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

int ThreadPool::default_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hw, 1u, 8u));
}

ThreadPool::ThreadPool() { start_workers(default_threads()); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::resize(int threads) {
  std::lock_guard<std::mutex> exclusive(run_mutex_);
  stop_workers();
  start_workers(std::max(threads, 1));
}

void ThreadPool::start_workers(int threads) {
  stop_ = false;
  // A worker must not mistake a job published before it existed for a new one,
  // nor miss one published before it got to run: it starts from this generation.
  const uint64_t generation = generation_;
  // The calling thread is worker 0, so spawn one fewer.
  for (int w = 1; w < threads; ++w) workers_.emplace_back([this, w, generation] { worker_loop(w, generation); });
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::run(size_t count, const TaskFn& fn) {
  if (count == 0) return;
  std::unique_lock<std::mutex> exclusive(run_mutex_, std::try_to_lock);
  if (count == 1 || !exclusive.owns_lock() || workers_.empty()) {
    for (size_t i = 0; i < count; ++i) fn(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_count_ = count;
    next_task_.store(0, std::memory_order_relaxed);
    busy_ = workers_.size();
    ++generation_;
  }
  wake_.notify_all();
  drain(0);
  std::unique_lock<std::mutex> lock(mutex_);
  // Workers that woke late still check in, so `fn` outlives every use of it.
  done_.wait(lock, [this] { return busy_ == 0; });
  job_ = nullptr;
}

void ThreadPool::drain(int worker) {
  for (;;) {
    const size_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= job_count_) return;
    (*job_)(task, worker);
  }
}

void ThreadPool::worker_loop(int worker, uint64_t seen) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    lock.unlock();
    drain(worker);
    lock.lock();
    if (--busy_ == 0) done_.notify_one();
  }
}

}  // namespace arkvale
