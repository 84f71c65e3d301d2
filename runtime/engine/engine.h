// One replica's engine: many requests at once through the scheduler, one batched
// Transformer::Forward per step, on one process or across the ranks of an MPI world.
//
// The leader (world rank 0) owns the Engine. Each Step(): the scheduler plans (which
// sequences, which tokens at which positions, which KV blocks to allocate, free or
// preempt); the leader encodes the plan (serving/step_plan.h) and broadcasts it over the
// world; every rank applies the plan's block operations to its KV cache and runs the whole
// batch; the logits reach the leader only, which samples one token for each sequence whose
// chunk reached its last known token (a per-request Sampler, so a request's tokens do not
// depend on what else is in the batch); the scheduler takes the results.
//
// Every other rank runs RunWorker(): receive the engine's configuration once, then
// receive plan -> decode and check it -> execute -> next, until the leader's stop plan.
// Workers never see prompts, text or command lines beyond what loads the model. A plan that
// does not decode, or does not match the worker's KV cache (a stale generation, a position
// that is not the sequence's length), stops the worker with an error naming the field; the
// leader's next collective then fails on its timeout, and the replica is torn down.
//
// Messages on the world communicator, in order: the configuration (56 bytes, magic
// "TSEC": the EngineConfig; or ReleaseWorkers()' message that no engine follows), then per
// step an i32 byte count and the plan's bytes. The leader sends a plan for every step it
// applies; Step() on an idle engine sends nothing, so an idle leader calls KeepAlive()
// (an empty plan) more often than the communicator's timeout, or shuts the engine down.
//
// Not thread-safe: one thread drives an engine. Borrows the model and the communicator,
// which must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/thread_pool.h"
#include "parallel/communicator.h"
#include "runtime/engine/kv_cache.h"
#include "runtime/engine/transformer.h"
#include "runtime/sampling/sampler.h"
#include "runtime/serving/scheduler.h"

namespace tessera {

struct EngineConfig {
  int64_t kv_blocks = 0;  // KV pool size in blocks (>= 1)
  int64_t block_size = 16;
  int64_t max_batch_tokens = 512;
  int64_t max_seqs = 32;
  kernels::DType kv_type = kernels::DType::kF32;  // KV element type: kF32, kF16 or kBF16
  // Kernel threads of this rank's own pool (the engine's steps run on it, so engines do not
  // share threads): 0 = as many as the default pool (TESSERA_THREADS, else every core).
  // Not sent to the workers: each rank sizes its own.
  int threads = 0;
};

struct EngineRequest {
  serving::RequestId id = 0;
  std::vector<int32_t> prompt;
  SamplingParams sampling = {};  // max_new_tokens and stop_tokens included
  bool prompt_logits = false;    // return every prompt position's logits when it finishes
  int32_t top_logprobs = 0;      // the n most likely tokens (and logprobs) at every output
};

// What one Step() produced for one request.
struct EngineOutput {
  serving::RequestId id = 0;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs = {};  // per token, under the model's unmodified distribution
  std::vector<std::vector<Sample>> top = {};  // per token, when top_logprobs > 0
  std::optional<serving::FinishReason> finish = {};
  // Set when this request failed on its own (its logits could not be sampled): it is
  // cancelled (finish kCancelled) and the other requests go on.
  absl::Status error = absl::OkStatus();
  std::vector<float> prompt_logits = {};  // [prompt, V], on the last output, when asked for
};

class Engine {
 public:
  // `world`: the replica's world communicator (null or one rank: a single process). On a
  // world of several ranks this is the leader's call, collective with RunWorker() on every
  // other rank: it sends them `config`, or releases them (ReleaseWorkers) when it fails.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const Transformer& model,
                                                        const EngineConfig& config,
                                                        parallel::Communicator* world = nullptr);
  // Stops the workers (Shutdown) if that has not been done.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request: INVALID_ARGUMENT for bad sampling parameters or token ids, and the
  // scheduler's refusals (context, pool size) with their numbers.
  absl::Status Add(EngineRequest request);
  bool Cancel(serving::RequestId id);
  // Runs one step; empty when there was nothing to do. After a failed step the engine is
  // broken: every later Step() returns the same error.
  absl::StatusOr<std::vector<EngineOutput>> Step();
  // On a world of several ranks, an idle engine's workers wait in a broadcast bounded by
  // the communicator's timeout: an idle leader calls KeepAlive() more often than that. It
  // runs one empty step (nothing computed); a no-op when the engine is busy, alone, or
  // shut down.
  absl::Status KeepAlive();
  // Sends the workers the stop plan (once; later calls return the first result). Step()
  // fails after it.
  absl::Status Shutdown();

  bool idle() const { return scheduler_.idle(); }
  // Steps run so far (plans applied, keep-alive steps included).
  int64_t steps() const { return steps_; }
  // The requests the last step computed tokens for, in plan order.
  const std::vector<serving::RequestId>& last_step_requests() const { return last_step_; }
  serving::SchedulerStats stats() const { return scheduler_.stats(); }
  const KvCache& cache() const { return *cache_; }
  const EngineConfig& config() const { return config_; }

 private:
  Engine(const Transformer& model, const EngineConfig& config, parallel::Communicator* world,
         std::unique_ptr<KvCache> cache, serving::Scheduler scheduler)
      : model_(model),
        config_(config),
        world_(world),
        pool_(std::make_unique<kernels::ThreadPool>(
            config.threads > 0 ? config.threads : kernels::DefaultThreadCount())),
        cache_(std::move(cache)),
        scheduler_(std::move(scheduler)) {}
  static absl::StatusOr<std::unique_ptr<Engine>> CreateLocal(const Transformer& model,
                                                              const EngineConfig& config,
                                                              parallel::Communicator* world);
  absl::StatusOr<std::vector<EngineOutput>> RunStep(bool keep_alive);
  absl::Status SendPlan(const serving::StepPlan& plan);

  struct Live {
    Sampler sampler;
    std::vector<int32_t> history;  // prompt and generated tokens
    std::vector<float> prompt_logits;  // [prompt, V] when asked for
    int32_t top_logprobs = 0;
  };

  const Transformer& model_;
  const EngineConfig config_;
  parallel::Communicator* const world_;  // null on one process; not owned
  const std::unique_ptr<kernels::ThreadPool> pool_;  // every step's kernels run on it
  std::unique_ptr<KvCache> cache_;
  serving::Scheduler scheduler_;
  std::map<serving::RequestId, Live> live_;
  std::vector<float> logits_;
  std::vector<serving::RequestId> last_step_;
  int64_t steps_ = 0;
  absl::Status broken_;
  bool plan_in_flight_ = false;  // a plan was sent and its step has not completed
  std::optional<absl::Status> shutdown_;
};

// A worker rank's side of the engine (every world rank but 0): receives the configuration
// and then every plan from the leader, and executes them, until the stop plan (OK) or an
// error (a bad plan or configuration, a failed step, a dead leader).
// `threads`: the worker's own kernel pool, as EngineConfig::threads.
absl::Status RunWorker(const Transformer& model, parallel::Communicator& world, int threads = 0);

// The leader's call when it cannot start an engine (a bad prompt, say) after its workers
// entered RunWorker: they return CANCELLED at once instead of waiting out the timeout.
// (Engine::Create calls it itself when it fails.)
absl::Status ReleaseWorkers(parallel::Communicator& world);

}  // namespace tessera
