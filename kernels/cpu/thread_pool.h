// A small reusable thread pool for CPU kernels: one parallel-for over index ranges.
//
// The process-wide pool (`DefaultPool()`) is created on first use with NumThreads()
// threads (the calling thread counts as one): TESSERA_THREADS if set to a positive integer,
// else std::thread::hardware_concurrency(). SetNumThreads() replaces it; call it at start-up
// or between kernel calls, never while a kernel runs.
//
// Idle threads spin briefly (tens of microseconds) before they sleep, so back-to-back
// kernels hand off without a wake-up each.
//
// Thread-safety: ParallelFor may be called from several threads; calls on one pool run one
// at a time. A ParallelFor issued from inside a ParallelFor body runs inline on the calling
// thread (no deadlock, no nested parallelism).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera::kernels {

class ThreadPool {
 public:
  // `threads` >= 1 workers in total, counting the caller of ParallelFor.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges that together cover [0, n), each (but the last)
  // `grain` long, spread over the pool's threads; returns when all have returned. fn must
  // not throw.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;  // immutable after construction
  std::mutex submit_mu_;              // serializes ParallelFor callers

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  // Written under mu_ (so that a waiter's predicate cannot miss a change), read by
  // spinning threads without it. Idle workers spin for kSpin before they sleep on
  // work_cv_, and the caller spins as long before it sleeps on done_cv_: a decode step
  // makes hundreds of hand-offs a few microseconds apart, each a futex wake-up otherwise.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> busy_{0};  // workers still inside the current job
  std::atomic<bool> stop_{false};
  // The current job; written under mu_ before generation_ advances, read-only during it.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  std::atomic<int64_t> next_{0};
};

// Threads used by the default pool (>= 1).
int NumThreads();
// Replaces the default pool with one of `threads` threads (values < 1 mean 1).
void SetNumThreads(int threads);
ThreadPool& DefaultPool();

// ParallelFor on the default pool.
inline void ParallelFor(int64_t n, int64_t grain,
                        const std::function<void(int64_t, int64_t)>& fn) {
  DefaultPool().ParallelFor(n, grain, fn);
}

}  // namespace tessera::kernels
