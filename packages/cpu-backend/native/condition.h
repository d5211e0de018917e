// A condition variable over std::mutex built on pthread_cond_t.
//
// Why not std::condition_variable: with GCC 12 headers its wait() binds to a
// libstdc++ symbol versioned GLIBCXX_3.4.30, so the addon would refuse to load
// on hosts whose C++ runtime predates GCC 12 (RHEL 9, Amazon Linux 2023). This
// wrapper needs nothing newer than the pthread functions the pool already uses.
#pragma once

#include <pthread.h>

#include <mutex>

namespace arkvale {

class ConditionVariable {
 public:
  ConditionVariable() { pthread_cond_init(&cond_, nullptr); }
  ~ConditionVariable() { pthread_cond_destroy(&cond_); }
  ConditionVariable(const ConditionVariable&) = delete;
  ConditionVariable& operator=(const ConditionVariable&) = delete;

  // Like std::condition_variable::wait(lock, pred); `lock` must hold its mutex.
  template <class Predicate>
  void wait(std::unique_lock<std::mutex>& lock, Predicate ready) {
    while (!ready()) pthread_cond_wait(&cond_, lock.mutex()->native_handle());
  }

  void notify_one() { pthread_cond_signal(&cond_); }
  void notify_all() { pthread_cond_broadcast(&cond_); }

 private:
  pthread_cond_t cond_;
};

}  // namespace arkvale
