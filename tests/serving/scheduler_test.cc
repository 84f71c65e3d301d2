// The scheduler driven by a fake model and no real one: the "model" stores each computed
// token in a KV array through the block tables a worker's mirror manager holds, and its
// next token is a hash of the sequence read back through those tables. Wrong positions,
// block tables or recomputation after preemption change the outputs.
#include "runtime/serving/scheduler.h"

#include <map>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::serving {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kVocab = 997;

// A worker: mirrors the block manager from the plans' ops and holds the "KV" (tokens).
class FakeModel {
 public:
  FakeModel(int64_t blocks, int64_t block_size)
      : mirror_(*KvBlockManager::Create(blocks, block_size)), kv_(blocks * block_size, -1) {}

  // Executes `wire` (an encoded plan) and returns the sampled tokens, as the leader would.
  std::vector<int32_t> Step(const std::vector<uint8_t>& wire) {
    absl::StatusOr<StepPlan> plan = DecodeStepPlan(wire, {});
    EXPECT_TRUE(plan.ok()) << plan.status();
    EXPECT_TRUE(mirror_.Apply(plan->kv_generation, plan->block_ops).ok());
    std::vector<int32_t> sampled;
    size_t t = 0;
    for (const SeqStep& s : plan->seqs) {
      for (int32_t i = 0; i < s.num_tokens; ++i) kv_[Slot(s.seq, s.first_position + i)] = plan->tokens[t++];
      EXPECT_TRUE(mirror_.SetLength(s.seq, s.first_position + s.num_tokens).ok());
      if (!s.wants_logits) continue;
      uint64_t h = 1469598103934665603ull;
      for (int64_t p = 0; p < s.first_position + s.num_tokens; ++p) {
        h = (h ^ static_cast<uint64_t>(kv_[Slot(s.seq, p)] + 1)) * 1099511628211ull;
      }
      sampled.push_back(static_cast<int32_t>((h ^ s.sampling.seed) % kVocab));
    }
    return sampled;
  }

 private:
  int64_t Slot(SeqId seq, int64_t pos) const {
    auto table = mirror_.BlockTable(seq);
    EXPECT_LT(pos / mirror_.block_size(), static_cast<int64_t>(table.size()));
    return table[pos / mirror_.block_size()] * mirror_.block_size() + pos % mirror_.block_size();
  }
  KvBlockManager mirror_;
  std::vector<int32_t> kv_;
};

struct Outcome {
  std::vector<int32_t> tokens;
  std::optional<FinishReason> finish;
};

// Runs the scheduler to completion; returns each request's outcome.
std::map<RequestId, Outcome> RunAll(Scheduler& s, FakeModel& model, int64_t* steps = nullptr,
                                    const std::function<void(Scheduler&, int64_t)>& each = {}) {
  std::map<RequestId, Outcome> out;
  int64_t n = 0;
  while (!s.idle()) {
    if (each) each(s, n);
    const StepPlan plan = s.Schedule();
    const std::vector<int32_t> sampled = model.Step(EncodeStepPlan(plan));
    absl::StatusOr<std::vector<RequestEvent>> events = s.Update(plan, sampled);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) break;
    for (const RequestEvent& e : *events) {
      Outcome& o = out[e.id];
      EXPECT_FALSE(o.finish.has_value()) << "request " << e.id << " reported after finishing";
      o.tokens.insert(o.tokens.end(), e.tokens.begin(), e.tokens.end());
      o.finish = e.finish;
    }
    if (++n > 100000) {
      ADD_FAILURE() << "no progress";
      break;
    }
  }
  if (steps != nullptr) *steps = n;
  return out;
}

Request MakeRequest(RequestId id, int64_t prompt_len, int32_t max_tokens, uint64_t seed = 0) {
  Request r;
  r.id = id;
  for (int64_t i = 0; i < prompt_len; ++i) r.prompt.push_back(static_cast<int32_t>((id * 131 + i * 7) % kVocab));
  r.max_tokens = max_tokens;
  r.sampling.seed = seed;
  return r;
}

Scheduler Make(const SchedulerConfig& c, int64_t blocks, int64_t block_size) {
  absl::StatusOr<Scheduler> s = Scheduler::Create(c, *KvBlockManager::Create(blocks, block_size));
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

TEST(SchedulerTest, ManyAtOnceEqualsEachAlone) {
  std::vector<Request> reqs;
  std::mt19937 rng(11);
  for (RequestId id = 0; id < 32; ++id) {
    const int64_t len = id == 0 ? 1 : id == 1 ? 600 : 1 + static_cast<int64_t>(rng() % 300);
    reqs.push_back(MakeRequest(id, len, 8 + static_cast<int32_t>(rng() % 24), rng()));
  }
  std::map<RequestId, Outcome> alone;
  for (const Request& r : reqs) {
    Scheduler s = Make({.max_batch_tokens = 4096, .max_seqs = 4, .max_context = 1024}, 256, 16);
    FakeModel m(256, 16);
    ASSERT_TRUE(s.Add(r).ok());
    alone[r.id] = RunAll(s, m)[r.id];
    EXPECT_EQ(alone[r.id].finish, FinishReason::kLength);
    EXPECT_EQ(static_cast<int32_t>(alone[r.id].tokens.size()), r.max_tokens);
  }
  // Together, with chunked prefill (64-token budget) and a pool so small that running
  // requests get preempted and recomputed.
  for (int64_t blocks : {int64_t{512}, int64_t{48}}) {
    Scheduler s = Make({.max_batch_tokens = 64, .max_seqs = 32, .max_context = 1024}, blocks, 16);
    FakeModel m(blocks, 16);
    for (const Request& r : reqs) ASSERT_TRUE(s.Add(r).ok());
    int64_t steps = 0;
    const std::map<RequestId, Outcome> together = RunAll(s, m, &steps);
    for (const Request& r : reqs) {
      ASSERT_TRUE(together.count(r.id)) << r.id;
      EXPECT_EQ(together.at(r.id).tokens, alone.at(r.id).tokens) << "request " << r.id;
      EXPECT_EQ(together.at(r.id).finish, FinishReason::kLength);
    }
    if (blocks == 48) {
      EXPECT_GT(s.stats().preemptions, 0);
    } else {
      EXPECT_EQ(s.stats().preemptions, 0);
    }
    EXPECT_EQ(s.kv().free_blocks(), blocks);  // everything given back
    std::printf("[ scheduler ] %lld blocks: %lld steps, %lld preemptions\n",
                static_cast<long long>(blocks), static_cast<long long>(steps),
                static_cast<long long>(s.stats().preemptions));
  }
}

TEST(SchedulerTest, BudgetsAndChunksAreRespected) {
  Scheduler s = Make({.max_batch_tokens = 40, .max_seqs = 3, .max_context = 512}, 64, 8);
  FakeModel m(64, 8);
  for (RequestId id = 0; id < 5; ++id) ASSERT_TRUE(s.Add(MakeRequest(id, 100, 4)).ok());
  while (!s.idle()) {
    const StepPlan plan = s.Schedule();
    EXPECT_LE(static_cast<int64_t>(plan.tokens.size()), 40);
    EXPECT_LE(static_cast<int64_t>(plan.seqs.size()), 3);
    for (const SeqStep& q : plan.seqs) {
      // Non-final prefill chunks skip the LM head.
      if (q.first_position + q.num_tokens < 100) {
        EXPECT_FALSE(q.wants_logits);
      }
    }
    ASSERT_TRUE(s.Update(plan, m.Step(EncodeStepPlan(plan))).ok());
    EXPECT_LE(s.stats().running, 3);
  }
}

TEST(SchedulerTest, DecodesAreNotStalledByALongPrompt) {
  Scheduler s = Make({.max_batch_tokens = 16, .max_seqs = 8, .max_context = 4096}, 512, 16);
  FakeModel m(512, 16);
  ASSERT_TRUE(s.Add(MakeRequest(1, 4, 50)).ok());
  std::vector<int32_t> sampled = m.Step(EncodeStepPlan(s.Schedule()));
  ASSERT_TRUE(s.Update(s.Schedule(), sampled).ok());  // request 1 now decodes
  ASSERT_TRUE(s.Add(MakeRequest(2, 2000, 1)).ok());
  for (int i = 0; i < 20; ++i) {
    const StepPlan plan = s.Schedule();
    ASSERT_GE(plan.seqs.size(), 1u);
    EXPECT_EQ(plan.seqs[0].seq, 1);  // the decode, every step
    EXPECT_EQ(plan.seqs[0].num_tokens, 1);
    ASSERT_TRUE(s.Update(plan, m.Step(EncodeStepPlan(plan))).ok());
  }
}

TEST(SchedulerTest, StopTokenAndCancellation) {
  Scheduler s = Make({.max_batch_tokens = 256, .max_seqs = 8, .max_context = 256}, 64, 4);
  FakeModel m(64, 4);
  // Learn request 1's first token alone, then make it a stop token.
  std::map<RequestId, Outcome> first;
  {
    Scheduler probe = Make({.max_batch_tokens = 256, .max_seqs = 8, .max_context = 256}, 64, 4);
    FakeModel pm(64, 4);
    ASSERT_TRUE(probe.Add(MakeRequest(1, 10, 1)).ok());
    first = RunAll(probe, pm);
  }
  Request stop = MakeRequest(1, 10, 100);
  stop.stop_tokens = {first[1].tokens[0]};
  ASSERT_TRUE(s.Add(stop).ok());
  ASSERT_TRUE(s.Add(MakeRequest(2, 10, 100)).ok());
  ASSERT_TRUE(s.Add(MakeRequest(3, 10, 100)).ok());
  EXPECT_FALSE(s.Cancel(99));
  const std::map<RequestId, Outcome> out = RunAll(s, m, nullptr, [](Scheduler& sc, int64_t step) {
    if (step == 3) {
      EXPECT_TRUE(sc.Cancel(2));   // running
      EXPECT_FALSE(sc.Cancel(2));  // once
    }
  });
  EXPECT_EQ(out.at(1).finish, FinishReason::kStop);
  EXPECT_EQ(out.at(1).tokens.size(), 1u);
  EXPECT_EQ(out.at(2).finish, FinishReason::kCancelled);
  EXPECT_LT(out.at(2).tokens.size(), 100u);
  EXPECT_EQ(out.at(3).finish, FinishReason::kLength);
  EXPECT_EQ(out.at(3).tokens.size(), 100u);
  EXPECT_EQ(s.kv().free_blocks(), 64);
}

TEST(SchedulerTest, ContextEndsGeneration) {
  Scheduler s = Make({.max_batch_tokens = 256, .max_seqs = 8, .max_context = 20}, 64, 4);
  FakeModel m(64, 4);
  ASSERT_TRUE(s.Add(MakeRequest(1, 15, 100)).ok());
  const auto out = RunAll(s, m);
  EXPECT_EQ(out.at(1).finish, FinishReason::kLength);
  EXPECT_EQ(out.at(1).tokens.size(), 5u);
}

TEST(SchedulerTest, AddRefusesWhatCanNeverRun) {
  Scheduler s = Make({.max_batch_tokens = 64, .max_seqs = 8, .max_context = 1000}, 10, 16);
  absl::Status never = s.Add(MakeRequest(1, 100, 100));
  EXPECT_EQ(never.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(never.message(), HasSubstr("can never fit: 200 tokens need 13 KV blocks of 16, the pool has 10"));
  EXPECT_THAT(s.Add(MakeRequest(2, 1000, 1)).message(), HasSubstr("no room in the context of 1000"));
  EXPECT_THAT(s.Add(MakeRequest(3, 0, 1)).message(), HasSubstr("empty prompt"));
  EXPECT_THAT(s.Add(MakeRequest(4, 5, 0)).message(), HasSubstr("max_tokens 0"));
  ASSERT_TRUE(s.Add(MakeRequest(5, 5, 5)).ok());
  EXPECT_THAT(s.Add(MakeRequest(5, 5, 5)).message(), HasSubstr("in use"));
  EXPECT_EQ(Scheduler::Create({.max_batch_tokens = 0}, *KvBlockManager::Create(1, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, MismatchedUpdatesChangeNothing) {
  Scheduler s = Make({.max_batch_tokens = 64, .max_seqs = 8, .max_context = 100}, 16, 4);
  ASSERT_TRUE(s.Add(MakeRequest(1, 6, 3)).ok());
  const StepPlan plan = s.Schedule();
  ASSERT_EQ(plan.seqs.size(), 1u);
  EXPECT_THAT(s.Update(plan, {}).status().message(), HasSubstr("0 sampled tokens for 1"));
  StepPlan wrong = plan;
  wrong.step = 5;
  EXPECT_EQ(s.Update(wrong, std::vector<int32_t>{1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  wrong = plan;
  wrong.seqs[0].first_position = 2;
  EXPECT_THAT(s.Update(wrong, std::vector<int32_t>{1}).status().message(), HasSubstr("does not match"));
  EXPECT_EQ(s.kv().generation(), 0u);
  EXPECT_EQ(s.kv().free_blocks(), 16);
  // The untouched plan still applies; applying it twice does not.
  ASSERT_TRUE(s.Update(plan, std::vector<int32_t>{1}).ok());
  EXPECT_FALSE(s.Update(plan, std::vector<int32_t>{1}).ok());
}

}  // namespace
}  // namespace tessera::serving
