// The KV block manager without a model: allocation, reuse, reference counts, stale and
// duplicate plans refused, failed steps leave the state untouched, capacity messages.
#include "runtime/serving/kv_block_manager.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::serving {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

KvBlockManager Make(int64_t blocks, int64_t block_size) {
  absl::StatusOr<KvBlockManager> m = KvBlockManager::Create(blocks, block_size);
  EXPECT_TRUE(m.ok()) << m.status();
  return *std::move(m);
}

// Plans with a BlockPlanner and applies; the planner's ops are what every rank applies.
absl::Status Step(KvBlockManager& m, const std::function<absl::Status(BlockPlanner&)>& plan) {
  BlockPlanner p(m);
  if (absl::Status s = plan(p); !s.ok()) return s;
  const int64_t predicted_free = p.free_blocks();
  absl::Status s = m.Apply(m.generation(), p.ops());
  if (s.ok()) {
    EXPECT_EQ(m.free_blocks(), predicted_free);
  }
  return s;
}

// Everything Apply can change, for comparing before and after a failed step.
struct Snapshot {
  uint64_t generation;
  int64_t free;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int32_t> refs;
  bool operator==(const Snapshot&) const = default;
};
Snapshot Snap(const KvBlockManager& m, std::initializer_list<SeqId> seqs) {
  Snapshot s{m.generation(), m.free_blocks(), {}, {}};
  for (SeqId q : seqs) {
    auto t = m.BlockTable(q);
    s.tables.emplace_back(t.begin(), t.end());
  }
  for (int32_t b = 0; b < m.num_blocks(); ++b) s.refs.push_back(m.RefCount(b));
  return s;
}

TEST(KvBlockManagerTest, CreateRefusesBadSizes) {
  EXPECT_EQ(KvBlockManager::Create(0, 16).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KvBlockManager::Create(8, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(KvBlockManager::Create(int64_t{1} << 40, 16).status().message(),
              HasSubstr("block count"));
}

TEST(KvBlockManagerTest, AllocateGrowFreeReuse) {
  KvBlockManager m = Make(8, 4);
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) {
                if (auto s = p.Reserve(1, 5); !s.ok()) return s;  // 2 blocks
                return p.Reserve(2, 4);                           // 1 block
              }).ok());
  EXPECT_THAT(m.BlockTable(1), ElementsAre(0, 1));
  EXPECT_THAT(m.BlockTable(2), ElementsAre(2));
  EXPECT_EQ(m.free_blocks(), 5);
  EXPECT_EQ(m.generation(), 1u);
  ASSERT_TRUE(m.SetLength(1, 5).ok());
  EXPECT_EQ(m.Length(1), 5);
  EXPECT_EQ(m.SetLength(1, 9).code(), absl::StatusCode::kInvalidArgument);  // 2 blocks = 8
  // Growing within the last block takes nothing; past it takes the lowest free block.
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Reserve(1, 8); }).ok());
  EXPECT_THAT(m.BlockTable(1), ElementsAre(0, 1));
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Reserve(1, 9); }).ok());
  EXPECT_THAT(m.BlockTable(1), ElementsAre(0, 1, 3));
  // Freeing one sequence lets another reuse its blocks in the same step.
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) {
                if (auto s = p.Release(1); !s.ok()) return s;
                return p.Reserve(3, 16);  // 4 blocks: 0, 1, 3 freed now, and 4
              }).ok());
  EXPECT_FALSE(m.Has(1));
  EXPECT_THAT(m.BlockTable(3), ElementsAre(0, 1, 3, 4));
  EXPECT_EQ(m.free_blocks(), 3);
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) {
                if (auto s = p.Release(2); !s.ok()) return s;
                return p.Release(3, /*preempt=*/true);
              }).ok());
  EXPECT_EQ(m.free_blocks(), 8);
  EXPECT_EQ(m.num_seqs(), 0);
}

TEST(KvBlockManagerTest, CapacityRefusalNamesTheNumbers) {
  KvBlockManager m = Make(4, 16);
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Reserve(1, 40); }).ok());  // 3 blocks
  BlockPlanner p(m);
  absl::Status s = p.Reserve(2, 33);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("sequence 2 needs 3 more blocks for 33 tokens; 1 of 4"));
  EXPECT_TRUE(p.ops().empty());  // nothing planned
  EXPECT_TRUE(p.Reserve(2, 16).ok());
}

TEST(KvBlockManagerTest, ForkSharesBlocksWithReferenceCounts) {
  KvBlockManager m = Make(8, 4);
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Reserve(1, 12); }).ok());
  ASSERT_TRUE(m.SetLength(1, 12).ok());
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Fork(2, 1, 2); }).ok());
  EXPECT_THAT(m.BlockTable(2), ElementsAre(0, 1));
  EXPECT_EQ(m.Length(2), 8);
  EXPECT_EQ(m.RefCount(0), 2);
  EXPECT_EQ(m.RefCount(2), 1);
  // Freeing the parent keeps the shared blocks for the child.
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Release(1); }).ok());
  EXPECT_EQ(m.RefCount(0), 1);
  EXPECT_EQ(m.RefCount(2), 0);
  EXPECT_EQ(m.free_blocks(), 6);
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) { return p.Reserve(2, 9); }).ok());
  EXPECT_THAT(m.BlockTable(2), ElementsAre(0, 1, 2));
}

TEST(KvBlockManagerTest, StaleAndReplayedPlansAreRefused) {
  KvBlockManager m = Make(4, 4);
  BlockPlanner p(m);
  ASSERT_TRUE(p.Reserve(1, 4).ok());
  const std::vector<BlockOp> ops = p.TakeOps();
  ASSERT_TRUE(m.Apply(0, ops).ok());
  const Snapshot before = Snap(m, {1});
  absl::Status replay = m.Apply(0, ops);
  EXPECT_EQ(replay.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(replay.message(), HasSubstr("stale step plan: stamped with KV generation 0"));
  EXPECT_EQ(m.Apply(7, {}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Snap(m, {1}), before);
}

TEST(KvBlockManagerTest, InvalidStepsChangeNothing) {
  KvBlockManager m = Make(6, 4);
  ASSERT_TRUE(Step(m, [](BlockPlanner& p) {
                if (auto s = p.Reserve(1, 8); !s.ok()) return s;
                return p.Reserve(2, 4);
              }).ok());
  const Snapshot before = Snap(m, {1, 2, 3});
  using K = BlockOp::Kind;
  struct Case {
    std::vector<BlockOp> ops;
    const char* expect;
  };
  const std::vector<Case> cases = {
      // A valid first op, then a bad one: the first must not stick.
      {{{.kind = K::kAllocate, .seq = 3, .blocks = {3}}, {.kind = K::kAllocate, .seq = 1, .blocks = {0}}},
       "block 0 is not free"},
      {{{.kind = K::kAllocate, .seq = 3, .blocks = {3}}, {.kind = K::kFree, .seq = 3}},
       "named twice in one step"},
      {{{.kind = K::kAllocate, .seq = 3, .blocks = {4, 4}}}, "block 4 is not free"},
      {{{.kind = K::kAllocate, .seq = 3, .blocks = {6}}}, "out of range [0, 6)"},
      {{{.kind = K::kAllocate, .seq = 3, .blocks = {-1}}}, "out of range"},
      {{{.kind = K::kAllocate, .seq = 3}}, "no blocks"},
      {{{.kind = K::kFree, .seq = 9}}, "unknown sequence"},
      {{{.kind = K::kFork, .seq = 2, .parent = 1, .count = 1}}, "already exists"},
      {{{.kind = K::kFork, .seq = 3, .parent = 1, .count = 3}}, "parent 1 has 2"},
      {{{.kind = K::kFree, .seq = 1}, {.kind = K::kFork, .seq = 3, .parent = 1, .count = 1}},
       "changes in this step"},
      {{{.kind = static_cast<K>(9), .seq = 3}}, "unknown operation kind"},
  };
  for (const Case& c : cases) {
    absl::Status s = m.Apply(m.generation(), c.ops);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.expect;
    EXPECT_THAT(s.message(), HasSubstr(c.expect));
    EXPECT_EQ(Snap(m, {1, 2, 3}), before) << c.expect;
  }
  BlockPlanner p(m);
  ASSERT_TRUE(p.Reserve(3, 4).ok());
  EXPECT_THAT(p.Reserve(3, 8).message(), HasSubstr("planned twice"));
  EXPECT_THAT(p.Release(3).message(), HasSubstr("unknown sequence 3"));
}

// Random plans: the planner's prediction and the manager's invariants hold throughout.
TEST(KvBlockManagerTest, RandomStepsKeepInvariants) {
  KvBlockManager m = Make(32, 4);
  std::mt19937 rng(7);
  for (int step = 0; step < 500; ++step) {
    BlockPlanner p(m);
    for (SeqId q = 0; q < 10; ++q) {
      const int r = static_cast<int>(rng() % 4);
      if (r == 0 && m.Has(q)) {
        ASSERT_TRUE(p.Release(q, rng() % 2 == 0).ok());
      } else if (r == 1) {
        absl::Status s = p.Reserve(q, m.Length(q) + static_cast<int64_t>(rng() % 9));
        ASSERT_TRUE(s.ok() || s.code() == absl::StatusCode::kResourceExhausted) << s;
      } else if (r == 2 && !m.Has(q) && m.Has((q + 1) % 10) &&
                 !m.BlockTable((q + 1) % 10).empty()) {
        (void)p.Fork(q, (q + 1) % 10, 1);  // may be refused if the parent changes this step
      }
    }
    const int64_t predicted = p.free_blocks();
    ASSERT_TRUE(m.Apply(m.generation(), p.ops()).ok()) << "step " << step;
    ASSERT_EQ(m.free_blocks(), predicted);
    std::vector<int32_t> refs(32, 0);
    for (SeqId q = 0; q < 10; ++q) {
      for (int32_t b : m.BlockTable(q)) ++refs[b];
      if (m.Has(q)) {
        ASSERT_TRUE(m.SetLength(q, static_cast<int64_t>(m.BlockTable(q).size()) * 4).ok());
      }
    }
    int64_t free = 0;
    for (int32_t b = 0; b < 32; ++b) {
      ASSERT_EQ(m.RefCount(b), refs[b]) << "block " << b;
      free += refs[b] == 0;
    }
    ASSERT_EQ(m.free_blocks(), free);
  }
}

}  // namespace
}  // namespace tessera::serving
