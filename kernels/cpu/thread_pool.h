// A small reusable thread pool for CPU kernels: one parallel-for over index ranges.
//
// Kernels run on the calling thread's current pool: the innermost ScopedPool's (an engine
// runs its steps under its own pool, so several engines fit in one process), else the
// process-wide pool (`DefaultPool()`), created on first use with TESSERA_THREADS threads if
// that is set to a positive integer, else std::thread::hardware_concurrency() (the calling
// thread counts as one). SetNumThreads() replaces the default pool; call it at start-up or
// between kernel calls, never while a kernel runs.
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

// Replaces the default pool with one of `threads` threads (values < 1 mean 1).
void SetNumThreads(int threads);
ThreadPool& DefaultPool();
// The default pool's thread count, without creating the pool when it does not exist yet
// (what an engine sizes its own pool by).
int DefaultThreadCount();

// This thread's current pool (see above), and its thread count (>= 1).
ThreadPool& CurrentPool();
int NumThreads();

// Makes `pool` the current pool of the constructing thread until destroyed; scopes nest.
// The pool must outlive the scope.
class ScopedPool {
 public:
  explicit ScopedPool(ThreadPool& pool);
  ~ScopedPool();
  ScopedPool(const ScopedPool&) = delete;
  ScopedPool& operator=(const ScopedPool&) = delete;

 private:
  ThreadPool* const previous_;
};

// ParallelFor on the current pool.
inline void ParallelFor(int64_t n, int64_t grain,
                        const std::function<void(int64_t, int64_t)>& fn) {
  CurrentPool().ParallelFor(n, grain, fn);
}

}  // namespace tessera::kernels
