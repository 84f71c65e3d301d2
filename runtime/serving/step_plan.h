// The step plan: what the leader of a replica tells every rank to do in one step, as a
// versioned little-endian wire format. Encode on the leader, broadcast the bytes, Decode on
// every rank; a worker executes only what a plan that decoded cleanly says.
//
// Layout (all integers little-endian; padding bytes must be zero):
//   header (32 bytes): u32 magic "TSPL", u16 version (1), u16 flags (bit 0: stop),
//                      u32 body bytes, u32 reserved (0), u64 step, u64 kv_generation
//   body:   u32 n_block_ops, u32 n_seqs, u32 n_tokens
//           n_block_ops x { u8 kind, u8[3] 0, u32 n_blocks, i64 seq, i64 parent, i64 count,
//                           i32 blocks[n_blocks] }
//           n_seqs x      { i64 seq, i32 first_position, i32 num_tokens, u8 flags (bit 0:
//                           wants_logits, bit 1: all_logits), u8[3] 0, f32 temperature, i32 top_k, f32 top_p,
//                           f32 min_p, f32 repetition_penalty, u64 seed }   (48 bytes)
//           i32 tokens[n_tokens]   (each sequence's tokens in `seqs` order)
// Decode checks every count against the bytes left before reading or allocating, every
// enum, index and range against PlanLimits, and that nothing follows the body. Errors name
// the field ("step plan: seqs[2].first_position -4 is negative"); truncation is DataLoss,
// anything else InvalidArgument.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/serving/kv_block_manager.h"

namespace tessera::serving {

inline constexpr uint32_t kStepPlanMagic = 0x4C505354;  // "TSPL"
inline constexpr uint16_t kStepPlanVersion = 1;

// What a sequence's sampler is set to; the leader samples, the state travels so that a
// distributed top-k/argmax can run where sampling allows it.
struct SamplingState {
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;

  bool operator==(const SamplingState&) const = default;
};

// One sequence's share of a step: `num_tokens` new tokens at positions
// [first_position, first_position + num_tokens).
struct SeqStep {
  SeqId seq = 0;
  int32_t first_position = 0;
  int32_t num_tokens = 0;
  bool wants_logits = false;  // its last token's row goes through the LM head (and is sampled)
  bool all_logits = false;    // every token's row goes through the LM head (prompt logits)
  SamplingState sampling;

  bool operator==(const SeqStep&) const = default;
};

struct StepPlan {
  uint64_t step = 0;
  uint64_t kv_generation = 0;  // the block manager generation the ops apply to
  bool stop = false;           // the replica stops after this plan
  std::vector<BlockOp> block_ops;
  std::vector<SeqStep> seqs;
  std::vector<int32_t> tokens;

  bool operator==(const StepPlan&) const = default;
};

// Bounds a decoded plan must respect (from the replica's configuration).
struct PlanLimits {
  int64_t max_seqs = 1024;
  int64_t max_tokens = 1 << 16;
  int64_t max_block_ops = 1 << 14;
  int64_t num_blocks = INT32_MAX;  // block ids in [0, num_blocks)
  int64_t vocab = INT32_MAX;       // token ids in [0, vocab)
  int64_t max_position = INT32_MAX;  // positions in [0, max_position)
};

std::vector<uint8_t> EncodeStepPlan(const StepPlan& plan);
absl::StatusOr<StepPlan> DecodeStepPlan(std::span<const uint8_t> bytes, const PlanLimits& limits);

}  // namespace tessera::serving
