// Fuzz target: the step plan a worker rank receives (runtime/serving/step_plan.h). A plan
// that decodes must be the canonical encoding of what it decoded to (re-encoding gives the
// same bytes), and must respect the limits it was decoded under.
#include <cstddef>
#include <cstdint>
#include <span>

#include "runtime/serving/step_plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera::serving;
  const PlanLimits limits{.max_seqs = 64, .max_tokens = 4096, .max_block_ops = 256,
                          .num_blocks = 1024, .vocab = 50000, .max_position = 8192};
  auto plan = DecodeStepPlan(std::span<const uint8_t>(data, size), limits);
  if (!plan.ok()) return 0;
  const std::vector<uint8_t> again = EncodeStepPlan(*plan);
  if (again.size() != size || !std::equal(again.begin(), again.end(), data)) __builtin_trap();
  if (static_cast<int64_t>(plan->seqs.size()) > limits.max_seqs ||
      static_cast<int64_t>(plan->tokens.size()) > limits.max_tokens ||
      static_cast<int64_t>(plan->block_ops.size()) > limits.max_block_ops) {
    __builtin_trap();
  }
  int64_t tokens = 0;
  for (const SeqStep& s : plan->seqs) tokens += s.num_tokens;
  if (tokens != static_cast<int64_t>(plan->tokens.size())) __builtin_trap();
  for (int32_t t : plan->tokens) {
    if (t < 0 || t >= limits.vocab) __builtin_trap();
  }
  return 0;
}
