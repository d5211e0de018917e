// A small persistent thread pool: kernels split their work into independent
// tasks and run them on the pool's workers plus the calling (JS) thread, which
// blocks until every task is done. Workers sleep on a condition variable between
// jobs, so an idle addon costs no CPU.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "condition.h"

namespace arkvale {

class ThreadPool {
 public:
  // fn(task, worker): worker is in [0, threads()), distinct among tasks running at
  // the same time, so it can index per-thread scratch memory.
  using TaskFn = std::function<void(size_t task, int worker)>;

  static ThreadPool& instance();

  // Hardware concurrency capped at 8 (more threads rarely help these kernels and
  // would crowd a shared host).
  static int default_threads();

  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Total threads working on a job, the caller included.
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Replaces the workers; waits for a running job first.
  void resize(int threads);

  // Runs fn for every task in [0, count) and returns when all are done. Tasks are
  // handed out in order, so callers put the most expensive first. If another
  // thread (a worker_thread with its own JS environment) is already using the
  // pool, this call runs its tasks serially instead of waiting.
  void run(size_t count, const TaskFn& fn);

 private:
  ThreadPool();
  void start_workers(int threads);
  void stop_workers();
  void worker_loop(int worker, uint64_t seen);
  void drain(int worker);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;      // guards the fields below
  ConditionVariable wake_;
  ConditionVariable done_;
  uint64_t generation_ = 0;
  size_t busy_ = 0;
  bool stop_ = false;
  const TaskFn* job_ = nullptr;
  size_t job_count_ = 0;
  std::atomic<size_t> next_task_{0};
};

}  // namespace arkvale
