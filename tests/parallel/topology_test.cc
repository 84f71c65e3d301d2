// Topology: every layout of worlds 1..8 partitions the ranks correctly, and Make refuses
// layouts a model cannot take, saying what would work.
#include "parallel/topology.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace tessera::parallel {
namespace {

constexpr GroupKind kKinds[] = {GroupKind::kTp, GroupKind::kCp, GroupKind::kEp, GroupKind::kMoeTp};

// A model every layout of worlds up to 8 fits: 840 = lcm(1..8) heads and experts.
ModelShape Flexible() {
  return ModelShape{.n_heads = 840,
                    .n_kv_heads = 840,
                    .head_dim = 8,
                    .ffn = 840 * 4,
                    .n_experts = 840,
                    .moe_ffn = 840,
                    .vocab = 1000};
}

// The rank getters are usable at compile time.
static_assert(Topology{.cp = 2, .tp = 4, .ep = 2}.world() == 8);
static_assert(Topology{.cp = 2, .tp = 4, .ep = 2}.tp_rank(6) == 2);
static_assert(Topology{.cp = 2, .tp = 4, .ep = 2}.cp_rank(6) == 1);
static_assert(Topology{.cp = 2, .tp = 4, .ep = 2}.moe_tp() == 4);
static_assert(Topology{.cp = 2, .tp = 4, .ep = 2}.ep_rank(5) == 1);
static_assert(Topology{.cp = 2, .tp = 4, .ep = 2}.moe_tp_rank(5) == 1);

TEST(TopologyTest, EveryFactorisationOfWorldsOneToEightPartitionsTheRanks) {
  int layouts = 0;
  for (int world = 1; world <= 8; ++world) {
    for (int tp = 1; tp <= world; ++tp) {
      if (world % tp != 0) continue;
      const int cp = world / tp;
      for (int ep = 1; ep <= world; ++ep) {
        if (world % ep != 0) continue;
        absl::StatusOr<Topology> t = Topology::Make(world, tp, ep, cp, Flexible());
        ASSERT_TRUE(t.ok()) << t.status();
        ++layouts;
        SCOPED_TRACE(testing::Message()
                     << "world " << world << " cp " << cp << " tp " << tp << " ep " << ep);
        EXPECT_EQ(t->world(), world);
        for (GroupKind k : kKinds) {
          std::vector<int> seen(world, 0);
          std::set<std::vector<int>> groups;
          for (int r = 0; r < world; ++r) {
            const std::vector<int> g = t->Group(k, r);
            ASSERT_EQ(static_cast<int>(g.size()), t->group_size(k));
            // r is in its own group, at its own rank, and every member agrees on the group.
            ASSERT_EQ(g[t->rank_in_group(k, r)], r);
            for (int m : g) {
              EXPECT_EQ(t->Group(k, m), g);
              EXPECT_EQ(t->group_index(k, m), t->group_index(k, r));
              ASSERT_GE(m, 0);
              ASSERT_LT(m, world);
            }
            groups.insert(g);
          }
          // The distinct groups partition the world: each rank in exactly one.
          EXPECT_EQ(static_cast<int>(groups.size()), t->num_groups(k));
          for (const std::vector<int>& g : groups) {
            for (int m : g) ++seen[m];
          }
          for (int r = 0; r < world; ++r) EXPECT_EQ(seen[r], 1) << GroupName(k) << " rank " << r;
          std::set<int> indices;
          for (int r = 0; r < world; ++r) indices.insert(t->group_index(k, r));
          EXPECT_EQ(static_cast<int>(indices.size()), t->num_groups(k));
          EXPECT_EQ(*indices.rbegin(), t->num_groups(k) - 1);
        }
        for (int r = 0; r < world; ++r) {
          // TP and MoE-TP groups are adjacent ranks; tp/cp and moe_tp/ep coordinates are a
          // bijection with the rank.
          const std::vector<int> tpg = t->TpGroup(r), mtg = t->MoeTpGroup(r);
          for (size_t i = 1; i < tpg.size(); ++i) EXPECT_EQ(tpg[i], tpg[i - 1] + 1);
          for (size_t i = 1; i < mtg.size(); ++i) EXPECT_EQ(mtg[i], mtg[i - 1] + 1);
          EXPECT_EQ(t->cp_rank(r) * tp + t->tp_rank(r), r);
          EXPECT_EQ(t->ep_rank(r) * t->moe_tp() + t->moe_tp_rank(r), r);
          EXPECT_EQ(t->CpGroup(r).size(), static_cast<size_t>(cp));
          EXPECT_EQ(t->EpGroup(r).size(), static_cast<size_t>(ep));
        }
      }
    }
  }
  EXPECT_EQ(layouts, 1 + 4 + 4 + 9 + 4 + 16 + 4 + 16);  // sum over W of d(W)^2
}

TEST(TopologyTest, ExpertsSplitEvenlyOverEpRanks) {
  const ModelShape m{
      .n_heads = 4, .n_kv_heads = 4, .head_dim = 8, .ffn = 64, .n_experts = 8, .moe_ffn = 64};
  absl::StatusOr<Topology> t = Topology::Make(4, 2, 4, 2, m);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->Experts(m, 0), (Range{0, 2}));
  EXPECT_EQ(t->Experts(m, 3), (Range{6, 8}));
  // ep = world: moe_tp = 1, the ep group is the whole world.
  EXPECT_EQ(t->EpGroup(2), (std::vector<int>{0, 1, 2, 3}));
  absl::StatusOr<Topology> t2 = Topology::Make(4, 2, 2, 2, m);
  ASSERT_TRUE(t2.ok());
  // ep = cp: the moe_tp groups are the tp groups.
  for (int r = 0; r < 4; ++r) EXPECT_EQ(t2->MoeTpGroup(r), t2->TpGroup(r));
  EXPECT_EQ(t2->EpGroup(1), (std::vector<int>{1, 3}));
}

TEST(TopologyTest, KvHeadsSplitOrReplicate) {
  const ModelShape m{.n_heads = 8, .n_kv_heads = 2, .head_dim = 16, .ffn = 64};
  // tp <= Hkv: split.
  absl::StatusOr<Topology> t2 = Topology::Make(2, 2, 1, 1, m);
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t2->KvHeads(m, 1), (Range{1, 2}));
  EXPECT_EQ(t2->QueryHeads(m, 1), (Range{4, 8}));
  // tp = 8 > Hkv = 2: each KV head on 4 adjacent ranks, the one their query heads use.
  absl::StatusOr<Topology> t8 = Topology::Make(8, 8, 1, 1, m);
  ASSERT_TRUE(t8.ok()) << t8.status();
  const int64_t group = m.n_heads / m.n_kv_heads;  // query heads per KV head
  for (int r = 0; r < 8; ++r) {
    const Range kv = t8->KvHeads(m, r), q = t8->QueryHeads(m, r);
    EXPECT_EQ(kv.end - kv.begin, 1);
    EXPECT_EQ(kv.begin, r / 4);
    for (int64_t h = q.begin; h < q.end; ++h) EXPECT_EQ(h / group, kv.begin);
  }
}

TEST(TopologyTest, RefusalsSayWhatWorks) {
  const ModelShape nine{.n_heads = 9, .n_kv_heads = 3, .head_dim = 8, .ffn = 36};
  absl::StatusOr<Topology> t = Topology::Make(4, 4, 1, 1, nine);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("tp=4 does not divide 9 attention heads; valid tp for this "
                                      "model: 1, 3, 9"),
            absl::string_view::npos)
      << t.status();

  t = Topology::Make(6, 4, 1, 1, nine);  // world != cp × tp
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("world 6 is not cp × tp = 1 × 4"), absl::string_view::npos)
      << t.status();
  EXPECT_NE(t.status().message().find("6x1, 2x3"), absl::string_view::npos) << t.status();

  // tp = 2 with 3 KV heads: neither divides the other.
  const ModelShape six{.n_heads = 6, .n_kv_heads = 3, .head_dim = 8, .ffn = 36};
  t = Topology::Make(2, 2, 1, 1, six);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("3 KV heads; valid tp for this model: 1, 3, 6"),
            absl::string_view::npos)
      << t.status();

  // Q8_0 blocks: ffn 64 splits into whole 32-blocks over tp 2 but not 4.
  const ModelShape q8{.n_heads = 4, .n_kv_heads = 4, .head_dim = 32, .ffn = 64, .o_block = 32,
                      .down_block = 32};
  EXPECT_TRUE(Topology::Make(2, 2, 1, 1, q8).ok());
  t = Topology::Make(4, 4, 1, 1, q8);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("valid tp for this model: 1, 2"), absl::string_view::npos)
      << t.status();

  // Blocks per kind of weight: a 576-column attention output in a 32-block type beside a
  // Q4_K down projection (SmolLM2 Q4_K_M) runs at tp 1 and 3 (192 columns, 6 blocks of 32;
  // FFN shards of 512, 2 blocks of 256); tp 9 leaves FFN shards of 170.67.
  const ModelShape mixed{.n_heads = 9, .n_kv_heads = 3, .head_dim = 64, .ffn = 1536, .o_block = 32,
                         .down_block = 256};
  EXPECT_TRUE(Topology::Make(1, 1, 1, 1, mixed).ok());
  EXPECT_TRUE(Topology::Make(3, 3, 1, 1, mixed).ok());
  t = Topology::Make(9, 9, 1, 1, mixed);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("valid tp for this model: 1, 3"), absl::string_view::npos)
      << t.status();

  const ModelShape moe{
      .n_heads = 4, .n_kv_heads = 4, .head_dim = 8, .ffn = 0, .n_experts = 6, .moe_ffn = 12};
  t = Topology::Make(4, 4, 3, 1, moe);  // ep does not divide world
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("ep=3 does not divide world 4"), absl::string_view::npos);
  t = Topology::Make(4, 4, 4, 1, moe);  // ep does not divide the experts
  ASSERT_FALSE(t.ok());
  EXPECT_NE(
      t.status().message().find("ep=4 does not divide 6 experts; valid ep for this model on 4 "
                                "ranks: 1, 2"),
      absl::string_view::npos)
      << t.status();
  t = Topology::Make(2, 2, 2, 1, ModelShape{.n_heads = 2, .n_kv_heads = 2, .ffn = 8});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("no experts"), absl::string_view::npos);

  EXPECT_FALSE(Topology::Make(0, 1, 1, 0, nine).ok());
  EXPECT_FALSE(Topology::Make(2, 2, 0, 1, nine).ok());
  EXPECT_FALSE(Topology::Make(1, 1, 1, 1, ModelShape{.n_heads = 6, .n_kv_heads = 4}).ok());
}

}  // namespace
}  // namespace tessera::parallel
