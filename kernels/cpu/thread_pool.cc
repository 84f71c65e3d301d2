#include "kernels/cpu/thread_pool.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "kernels/cpu/check.h"

namespace tessera::kernels {
namespace internal {

void CheckFail(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", file, line, cond, msg);
  std::abort();
}

}  // namespace internal

namespace {

thread_local bool tls_in_parallel_for = false;
thread_local ThreadPool* tls_current_pool = nullptr;  // set by ScopedPool

// How long an idle thread polls before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(50);

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls `ready` for up to kSpin; true if it became true.
template <typename F>
bool SpinUntil(F ready) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (ready()) return true;
    for (int k = 0; k < 16; ++k) CpuRelax();
    if ((i & 15) == 15 && std::chrono::steady_clock::now() > until) return false;
  }
}

int ThreadsFromEnvironment() {
  if (const char* env = std::getenv("TESSERA_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
    std::fprintf(stderr, "TESSERA_THREADS=%s is not a thread count in 1..1024; ignored\n", env);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::mutex g_default_mu;
std::unique_ptr<ThreadPool> g_default;  // guarded by g_default_mu

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunChunks() {
  const bool was_inside = tls_in_parallel_for;
  tls_in_parallel_for = true;
  for (;;) {
    const int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
    if (begin >= n_) break;
    (*fn_)(begin, std::min(n_, begin + grain_));
  }
  tls_in_parallel_for = was_inside;
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  auto has_work = [&] {
    return stop_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen;
  };
  for (;;) {
    if (!SpinUntil(has_work)) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, has_work);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    RunChunks();
    if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be between check and wait
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (workers_.empty() || n <= grain || tls_in_parallel_for) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);  // publishes the job
  }
  work_cv_.notify_all();
  RunChunks();
  auto done = [&] { return busy_.load(std::memory_order_acquire) == 0; };
  if (!SpinUntil(done)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, done);
  }
  fn_ = nullptr;
}

ThreadPool& DefaultPool() {
  std::lock_guard<std::mutex> lock(g_default_mu);
  if (!g_default) g_default = std::make_unique<ThreadPool>(ThreadsFromEnvironment());
  return *g_default;
}

int DefaultThreadCount() {
  std::lock_guard<std::mutex> lock(g_default_mu);
  return g_default ? g_default->num_threads() : ThreadsFromEnvironment();
}

ThreadPool& CurrentPool() { return tls_current_pool != nullptr ? *tls_current_pool : DefaultPool(); }

int NumThreads() { return CurrentPool().num_threads(); }

ScopedPool::ScopedPool(ThreadPool& pool) : previous_(tls_current_pool) { tls_current_pool = &pool; }

ScopedPool::~ScopedPool() { tls_current_pool = previous_; }

void SetNumThreads(int threads) {
  std::lock_guard<std::mutex> lock(g_default_mu);
  g_default.reset();
  g_default = std::make_unique<ThreadPool>(std::max(threads, 1));
}

}  // namespace tessera::kernels
