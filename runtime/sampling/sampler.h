// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded.
//
// Order of operations follows Hugging Face transformers' logits processors: repetition
// penalty, then temperature, then top-k, top-p and min-p filters, then a draw from the
// remaining distribution. Temperature 0 is greedy (argmax after the penalty; ties go to the
// lowest id), and so is any temperature below kGreedyBelowTemperature (1e-5, vLLM's
// _SAMPLING_EPS): sampling there differs from greedy only among logits within ~1e-4 of the
// maximum, less than the rounding error of the logits themselves. Penalised and scaled
// logits are computed in double, so no finite logit overflows at any temperature or penalty. The same params, seed and logits give the
// same tokens on every run.
//
// Non-finite logits (NaN or +-inf, from corrupt weights or activations) are refused with
// DATA_LOSS naming how many there are and where the first is; a Sampler never picks a token
// from them.
//
// A Sampler is one request's state (its random generator); not thread-safe, cheap to make.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera {

// Temperatures below this are greedy (see the opening comment).
inline constexpr float kGreedyBelowTemperature = 1e-5f;

struct SamplingParams {
  float temperature = 0.0f;         // 0 (or < kGreedyBelowTemperature): greedy
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off; applied to tokens already in the sequence
  uint64_t seed = 0;
  int32_t max_new_tokens = 128;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
};

// Checks ranges, with a message naming the parameter: temperature >= 0, top_k >= 0,
// top_p in (0, 1], min_p in [0, 1), repetition_penalty > 0, max_new_tokens >= 1.
absl::Status Validate(const SamplingParams& p);

struct Sample {
  int32_t id;
  float logprob;  // log-probability of `id` under the model's unmodified distribution
};

// The `n` most likely tokens of `logits` (finite) and their log-probabilities under the
// unmodified distribution, most likely first (ties: lowest id first).
std::vector<Sample> TopLogprobs(std::span<const float> logits, int32_t n);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // logits [V] of the next position; `history` the sequence so far (prompt and generated).
  // DATA_LOSS if a logit is not finite; INVALID_ARGUMENT if `logits` is empty.
  absl::StatusOr<Sample> Next(std::span<const float> logits, std::span<const int32_t> history);

 private:
  // Immutable after construction.
  SamplingParams params_;
  // Mutable state.
  std::mt19937_64 rng_;
  std::vector<double> work_;  // logits after the penalty, then divided by the temperature
  std::vector<int32_t> order_;
};

}  // namespace tessera
