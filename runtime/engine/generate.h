// Generation of one sequence: a single request through the engine (runtime/engine/engine.h),
// so `tessera generate` runs the same scheduler, step plans and batched forward as every
// other path. Runs on the leader; under mpirun every other rank runs RunWorker().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "runtime/engine/transformer.h"
#include "runtime/sampling/sampler.h"

namespace tessera {

struct GenerateResult {
  std::vector<int32_t> ids;     // generated tokens (the stop token included, if one ended it)
  std::vector<float> logprobs;  // per generated token
  std::string finish_reason;    // "stop" or "length"
  std::vector<float> prompt_logits;  // [T, V] when asked for, else empty
  double prefill_seconds = 0, decode_seconds = 0;  // to the first token; after it
};

struct GenerateOptions {
  SamplingParams sampling;
  bool keep_prompt_logits = false;
  // Called with each new token as it is sampled (for streaming). May be empty.
  std::function<void(int32_t)> on_token;
  // The replica's world when its other ranks run RunWorker() (null on one process).
  parallel::Communicator* world = nullptr;
  // Prompt tokens per step: a longer prompt is prefilled in chunks of this many.
  int64_t prefill_chunk = 2048;
  kernels::DType kv_type = kernels::DType::kF32;  // the KV cache's element type
};

// Checks the prompt and limits (prompt not empty, prompt + max_new_tokens within the
// model's context), sizes a KV pool for them, and runs. With `world`, the workers are
// released (or stopped) whatever happens.
absl::StatusOr<GenerateResult> Generate(const Transformer& model,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options);

}  // namespace tessera
