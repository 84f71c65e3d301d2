// One replica's engine on one process: many requests at once through the scheduler, one
// batched Transformer::Forward per step.
//
// Each Step(): the scheduler plans (which sequences, which tokens at which positions,
// which KV blocks to allocate, free or preempt), the plan's block operations are applied to
// the KV cache, the model runs the whole batch, the leader samples one token for each
// sequence whose chunk reached its last known token (per-request Sampler, so a request's
// tokens do not depend on what else is in the batch), and the scheduler takes the results.
// The plan is exactly what a step-plan broadcast will carry to worker ranks.
//
// Not thread-safe: one thread drives an engine. Borrows the model, which must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
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
};

struct EngineRequest {
  serving::RequestId id = 0;
  std::vector<int32_t> prompt;
  SamplingParams sampling = {};  // max_new_tokens and stop_tokens included
};

// What one Step() produced for one request.
struct EngineOutput {
  serving::RequestId id = 0;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs = {};  // per token, under the model's unmodified distribution
  std::optional<serving::FinishReason> finish = {};
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const Transformer& model,
                                                        const EngineConfig& config);

  // Queues a request: INVALID_ARGUMENT for bad sampling parameters or token ids, and the
  // scheduler's refusals (context, pool size) with their numbers.
  absl::Status Add(EngineRequest request);
  bool Cancel(serving::RequestId id);
  // Runs one step; empty when there was nothing to do.
  absl::StatusOr<std::vector<EngineOutput>> Step();
  bool idle() const { return scheduler_.idle(); }
  serving::SchedulerStats stats() const { return scheduler_.stats(); }
  const KvCache& cache() const { return *cache_; }

 private:
  Engine(const Transformer& model, std::unique_ptr<KvCache> cache, serving::Scheduler scheduler)
      : model_(model), cache_(std::move(cache)), scheduler_(std::move(scheduler)) {}

  struct Live {
    Sampler sampler;
    std::vector<int32_t> history;  // prompt and generated tokens
  };

  const Transformer& model_;
  std::unique_ptr<KvCache> cache_;
  serving::Scheduler scheduler_;
  std::map<serving::RequestId, Live> live_;
  std::vector<float> logits_;
};

}  // namespace tessera
