// Generation of one sequence: prefill the prompt in one step, then decode token by token
// with a Sampler until a stop token or the token limit. What `tessera generate` runs; the
// serving scheduler (continuous batching) drives Transformer::Forward directly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/engine/transformer.h"
#include "runtime/sampling/sampler.h"

namespace tessera {

struct GenerateResult {
  std::vector<int32_t> ids;     // generated tokens (the stop token included, if one ended it)
  std::vector<float> logprobs;  // per generated token
  std::string finish_reason;    // "stop" or "length"
  std::vector<float> prompt_logits;  // [T, V] when asked for, else empty
  double prefill_seconds = 0, decode_seconds = 0;
};

struct GenerateOptions {
  SamplingParams sampling;
  bool keep_prompt_logits = false;
  // Called with each new token as it is sampled (for streaming). May be empty.
  std::function<void(int32_t)> on_token;
  // The ranks of a sharded model: rank 0 (the leader) samples and broadcasts each token,
  // so every rank feeds the same token to the next step. Null on one process.
  parallel::Communicator* group = nullptr;
};

// Checks the prompt and limits (prompt not empty, prompt + max_new_tokens within the
// model's context), sizes a KV cache for them, and runs.
absl::StatusOr<GenerateResult> Generate(const Transformer& model,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options);

}  // namespace tessera
