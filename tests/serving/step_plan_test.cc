// The step plan wire format: round trips, and every truncation, corruption and
// out-of-range field refused with an error naming it.
#include "runtime/serving/step_plan.h"

#include <cstring>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::serving {
namespace {

using ::testing::HasSubstr;

StepPlan Sample() {
  StepPlan p;
  p.step = 41;
  p.kv_generation = 40;
  p.block_ops = {{.kind = BlockOp::Kind::kAllocate, .seq = 7, .blocks = {3, 4, 9}},
                 {.kind = BlockOp::Kind::kFree, .seq = 2},
                 {.kind = BlockOp::Kind::kPreempt, .seq = 5},
                 {.kind = BlockOp::Kind::kFork, .seq = 8, .parent = 7, .count = 2}};
  p.seqs = {{.seq = 7, .first_position = 0, .num_tokens = 3, .wants_logits = true,
             .all_logits = true,
             .sampling = {.temperature = 0.7f, .top_k = 40, .top_p = 0.9f, .min_p = 0.05f,
                          .repetition_penalty = 1.1f, .seed = 1234567890123ull}},
            {.seq = 1, .first_position = 99, .num_tokens = 1, .wants_logits = true, .sampling = {}}};
  p.tokens = {10, 11, 12, 500};
  return p;
}

const PlanLimits kLimits{.max_seqs = 16, .max_tokens = 64, .max_block_ops = 16,
                         .num_blocks = 16, .vocab = 1000, .max_position = 128};

TEST(StepPlanTest, RoundTrip) {
  const StepPlan p = Sample();
  const std::vector<uint8_t> bytes = EncodeStepPlan(p);
  EXPECT_EQ(bytes.size(), 32u + 12 + (4 * 32 + 3 * 4) + 2 * 48 + 4 * 4);
  absl::StatusOr<StepPlan> back = DecodeStepPlan(bytes, kLimits);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, p);
  StepPlan stop;
  stop.stop = true;
  stop.step = 9;
  absl::StatusOr<StepPlan> s = DecodeStepPlan(EncodeStepPlan(stop), kLimits);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, stop);
}

TEST(StepPlanTest, EveryTruncationAndExtensionIsRefused) {
  const std::vector<uint8_t> bytes = EncodeStepPlan(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<StepPlan> p =
        DecodeStepPlan(std::span<const uint8_t>(bytes.data(), n), kLimits);
    EXPECT_FALSE(p.ok()) << n;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_EQ(DecodeStepPlan(longer, kLimits).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StepPlanTest, RandomCorruptionNeverCrashesAndMostlyFails) {
  const std::vector<uint8_t> bytes = EncodeStepPlan(Sample());
  std::mt19937 rng(3);
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    absl::StatusOr<StepPlan> p = DecodeStepPlan(b, kLimits);
    if (!p.ok()) {
      ++refused;
      continue;
    }
    // What decodes is within the limits.
    for (const SeqStep& s : p->seqs) {
      ASSERT_GE(s.first_position, 0);
      ASSERT_LE(int64_t{s.first_position} + s.num_tokens, kLimits.max_position);
    }
    for (int32_t t : p->tokens) ASSERT_TRUE(t >= 0 && t < kLimits.vocab);
  }
  // Flips in ids, seeds, floats and positions can stay valid; headers and counts cannot.
  EXPECT_GT(refused, 10000);
}

// Overwrites the bytes at `offset` with `v`.
template <typename T>
std::vector<uint8_t> Patch(std::vector<uint8_t> b, size_t offset, T v) {
  std::memcpy(b.data() + offset, &v, sizeof(T));
  return b;
}

TEST(StepPlanTest, FieldsOutOfRangeAreNamed) {
  const std::vector<uint8_t> good = EncodeStepPlan(Sample());
  const size_t body = 32, ops = body + 12;
  const size_t seqs = ops + 4 * 32 + 3 * 4;  // 4 ops of 32 bytes, the allocate's 3 blocks
  const size_t tokens = seqs + 2 * 48;
  struct Case {
    std::vector<uint8_t> bytes;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {Patch<uint32_t>(good, 0, 0x12345678), "is not \"TSPL\""},
      {Patch<uint16_t>(good, 4, 2), "version 2 is not supported (this build reads 1)"},
      {Patch<uint16_t>(good, 6, 4), "flags 0x4 has unknown bits"},
      {Patch<uint32_t>(good, 12, 1), "reserved word 1"},
      {Patch<uint32_t>(good, body, 17), "n_block_ops 17 exceeds the limit 16"},
      {Patch<uint32_t>(good, body, 9), "n_block_ops 9 needs at least 288 bytes, 252 left"},
      {Patch<uint8_t>(good, ops, 0), "block_ops[0].kind 0 is unknown"},
      {Patch<uint8_t>(good, ops + 1, 1), "block_ops[0] padding is not zero"},
      {Patch<int32_t>(good, ops + 32, 16), "block_ops[0].blocks[0] 16 is out of range [0, 16)"},
      {Patch<uint32_t>(good, ops + 44 + 4, 1), "block_ops[1]: a free carries no block ids"},
      {Patch<int32_t>(good, seqs + 8, -4), "seqs[0].first_position -4 is negative"},
      {Patch<int32_t>(good, seqs + 48 + 8, 128), "seqs[1]: positions 128..128 pass the context length 128"},
      {Patch<int32_t>(good, seqs + 12, 0), "seqs[0].num_tokens 0 is not positive"},
      {Patch<int32_t>(good, seqs + 12, 4), "the sequences hold 5 tokens, n_tokens says 4"},
      {Patch<uint8_t>(good, seqs + 16, 5), "seqs[0].flags 0x5 has unknown bits"},
      {Patch<float>(good, seqs + 20, -1.0f), "seqs[0].temperature -1"},
      {Patch<float>(good, seqs + 20, std::numeric_limits<float>::quiet_NaN()), "temperature nan"},
      {Patch<int32_t>(good, seqs + 24, -3), "seqs[0].top_k -3 is negative"},
      {Patch<float>(good, seqs + 28, 0.0f), "seqs[0].top_p 0 is out of (0, 1]"},
      {Patch<float>(good, seqs + 32, 1.0f), "seqs[0].min_p 1 is out of [0, 1)"},
      {Patch<float>(good, seqs + 36, 0.0f), "seqs[0].repetition_penalty 0"},
      {Patch<int64_t>(good, seqs + 48, 7), "seqs[1].seq 7 appears twice"},
      {Patch<int32_t>(good, tokens + 4, 1000), "tokens[1] 1000 is out of the vocabulary [0, 1000)"},
      {Patch<int32_t>(good, tokens, -1), "tokens[0] -1"},
      {Patch<uint32_t>(good, 8, 7), "the header says 7"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<StepPlan> p = DecodeStepPlan(c.bytes, kLimits);
    ASSERT_FALSE(p.ok()) << c.expect;
    EXPECT_THAT(p.status().message(), HasSubstr(c.expect));
    EXPECT_THAT(p.status().message(), HasSubstr("step plan"));
  }
  // Limits bind.
  PlanLimits tight = kLimits;
  tight.max_seqs = 1;
  EXPECT_THAT(DecodeStepPlan(good, tight).status().message(), HasSubstr("n_seqs 2 exceeds the limit 1"));
  tight = kLimits;
  tight.max_tokens = 3;
  EXPECT_THAT(DecodeStepPlan(good, tight).status().message(), HasSubstr("n_tokens 4 exceeds"));
}

}  // namespace
}  // namespace tessera::serving
