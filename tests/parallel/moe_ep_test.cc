// MoeLayer with expert parallelism on 1, 2 and 4 in-process ranks against the one-rank layer
// holding all experts: both modes (replicated tokens + all-reduce; per-rank tokens +
// all-to-all-v dispatch/combine), the exact bytes each rank moves, a router that sends
// everything to one rank, a dead rank, and Create's refusals.
#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/dequant.h"
#include "kernels/matmul.h"
#include "parallel/fault_communicator.h"
#include "parallel/inprocess_communicator.h"
#include "parallel/moe.h"

namespace tessera::parallel {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::OwnedTensor;
using kernels::RoutingParams;
using kernels::Tensor;

constexpr int64_t kE = 8, kH = 64, kF = 32, kFs = 32;

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1.0f) {
  return kernels::testing::RandomFloats(n, seed, -scale, scale);
}

// `n` values of `v` from `first` (row-major, `dims`) stored as `type` (F32 or Q8_0).
OwnedTensor Make(DType type, const std::vector<int64_t>& dims, const std::vector<float>& v,
                 int64_t first = 0) {
  return kernels::testing::Stored(type, dims, v.data() + first);
}

// One MoE block as plain floats; Weights() cuts any rank's share of it.
struct Spec {
  DType type = DType::kF32;
  RoutingParams routing;
  bool shared = false;
  std::vector<float> router, gate, up, down, bias, sgate, sup, sdown, sg;
};

RoutingParams Mixtral() {
  RoutingParams p;
  p.top_k = 2;
  return p;
}

Spec MakeSpec(DType type, uint32_t seed, bool shared = false, RoutingParams p = Mixtral()) {
  Spec s;
  s.type = type;
  s.routing = p;
  s.shared = shared;
  s.router = Random(kE * kH, seed, 0.5f);
  s.gate = Random(kE * kF * kH, seed + 1, 0.2f);
  s.up = Random(kE * kF * kH, seed + 2, 0.2f);
  s.down = Random(kE * kH * kF, seed + 3, 0.2f);
  s.sgate = Random(kFs * kH, seed + 4, 0.2f);
  s.sup = Random(kFs * kH, seed + 5, 0.2f);
  s.sdown = Random(kH * kFs, seed + 6, 0.2f);
  s.sg = Random(kH, seed + 7, 0.5f);
  return s;
}

// Experts [e0, e0 + n) stacked, plus the replicated parts.
MoeWeights Weights(const Spec& s, int64_t e0, int64_t n) {
  MoeWeights w;
  w.router = Make(DType::kF32, {kE, kH}, s.router);
  w.gate = Make(s.type, {n, kF, kH}, s.gate, e0 * kF * kH);
  w.up = Make(s.type, {n, kF, kH}, s.up, e0 * kF * kH);
  w.down = Make(s.type, {n, kH, kF}, s.down, e0 * kH * kF);
  if (!s.bias.empty()) w.selection_bias = Make(DType::kF32, {kE}, s.bias);
  if (s.shared) {
    SharedExpertWeights sh;
    sh.gate = Make(s.type, {kFs, kH}, s.sgate);
    sh.up = Make(s.type, {kFs, kH}, s.sup);
    sh.down = Make(s.type, {kH, kFs}, s.sdown);
    sh.sigmoid_gate = Make(DType::kF32, {1, kH}, s.sg);
    w.shared = std::move(sh);
  }
  return w;
}

// The one-rank layer with all experts on `x` [T, H]: its output and routing counts.
struct OneRank {
  std::vector<float> out;
  std::vector<int64_t> tokens_per_expert;
};
OneRank Reference(const Spec& s, const std::vector<float>& x) {
  const int64_t T = static_cast<int64_t>(x.size()) / kH;
  auto solo = MakeSoloCommunicator();
  absl::StatusOr<std::unique_ptr<MoeLayer>> layer =
      MoeLayer::Create(Weights(s, 0, kE), s.routing, solo.get());
  EXPECT_TRUE(layer.ok()) << layer.status();
  OneRank r{std::vector<float>(T * kH), {}};
  EXPECT_TRUE((*layer)
                  ->Forward(Tensor(r.out.data(), DType::kF32, {T, kH}),
                            ConstTensor(x.data(), DType::kF32, {T, kH}))
                  .ok());
  r.tokens_per_expert = (*layer)->tokens_per_expert();
  return r;
}

// An ep-rank group of layers (rank r holds experts [r·E/ep, (r+1)·E/ep)), each rank's
// communicator wrapped for fault injection.
struct Group {
  std::vector<FaultInjectingCommunicator*> comms;
  std::vector<std::unique_ptr<Communicator>> owned;
  std::vector<std::unique_ptr<MoeLayer>> layers;
};
Group MakeGroup(const Spec& s, int ep, ExpertParallelism mode,
                absl::Duration timeout = InProcessCommunicator::kDefaultTimeout) {
  Group g;
  for (std::unique_ptr<Communicator>& c : InProcessCommunicator::MakeGroup(ep, timeout)) {
    auto f = std::make_unique<FaultInjectingCommunicator>(std::move(c));
    g.comms.push_back(f.get());
    g.owned.push_back(std::move(f));
  }
  const int64_t El = kE / ep;
  for (int r = 0; r < ep; ++r) {
    absl::StatusOr<std::unique_ptr<MoeLayer>> layer =
        MoeLayer::Create(Weights(s, r * El, El), s.routing, g.comms[r], mode);
    EXPECT_TRUE(layer.ok()) << layer.status();
    g.layers.push_back(layer.ok() ? std::move(*layer) : nullptr);
  }
  return g;
}

// Forward on every rank at once (one thread each), rank r on xs[r]; outputs into outs.
std::vector<absl::Status> ForwardAll(Group& g, const std::vector<std::vector<float>>& xs,
                                     std::vector<std::vector<float>>& outs) {
  const int ep = static_cast<int>(g.layers.size());
  std::vector<absl::Status> status(ep);
  outs.assign(ep, {});
  std::vector<std::thread> threads;
  for (int r = 0; r < ep; ++r) {
    const int64_t T = static_cast<int64_t>(xs[r].size()) / kH;
    outs[r].assign(T * kH, std::nanf(""));
    threads.emplace_back([&, r, T] {
      status[r] = g.layers[r]->Forward(Tensor(outs[r].data(), DType::kF32, {T, kH}),
                                       ConstTensor(xs[r].data(), DType::kF32, {T, kH}));
    });
  }
  for (std::thread& t : threads) t.join();
  return status;
}

// |got - want| <= 1e-5 relative to the output's scale, element by element.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  float scale = 0;
  for (float w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5f * (std::fabs(want[i]) + scale)) << "at " << i;
  }
}

// x's rows [first, first + n).
std::vector<float> Rows(const std::vector<float>& x, int64_t first, int64_t n) {
  return std::vector<float>(x.begin() + first * kH, x.begin() + (first + n) * kH);
}

CollectiveStats Minus(const CollectiveStats& a, const CollectiveStats& b) {
  CollectiveStats d;
  for (int i = 0; i < kNumCollectiveKinds; ++i) {
    d.by_kind[i].calls = a.by_kind[i].calls - b.by_kind[i].calls;
    d.by_kind[i].bytes = a.by_kind[i].bytes - b.by_kind[i].bytes;
  }
  return d;
}

// Only `kind` was used: `calls` calls moving `bytes`.
void ExpectOnly(const CollectiveStats& s, CollectiveKind kind, int64_t calls, int64_t bytes) {
  for (int i = 0; i < kNumCollectiveKinds; ++i) {
    const auto k = static_cast<CollectiveKind>(i);
    EXPECT_EQ(s[k].calls, k == kind ? calls : 0) << CollectiveName(k);
    EXPECT_EQ(s[k].bytes, k == kind ? bytes : 0) << CollectiveName(k);
  }
}

struct EpParam {
  int ep;
  DType type;
};
std::string Name(const testing::TestParamInfo<EpParam>& i) {
  return "ep" + std::to_string(i.param.ep) + (i.param.type == DType::kF32 ? "_F32" : "_Q8_0");
}
class MoeEpTest : public testing::TestWithParam<EpParam> {};

TEST_P(MoeEpTest, ReplicatedTokensMatchOneRankOnEveryRank) {
  const auto [ep, type] = GetParam();
  for (bool shared : {false, true}) {
    const Spec s = MakeSpec(type, 100 + ep, shared);
    Group g = MakeGroup(s, ep, ExpertParallelism::kReplicatedTokens);
    for (int64_t T : {13, 1, 0, 13}) {  // the same layers again: scratch reuse
      SCOPED_TRACE(testing::Message() << "shared " << shared << " T " << T);
      const std::vector<float> x = Random(T * kH, 7 + T);
      const OneRank want = Reference(s, x);
      std::vector<CollectiveStats> before;
      for (int r = 0; r < ep; ++r) {
        before.push_back(g.comms[r]->stats());
        g.layers[r]->ResetTokensPerExpert();
      }
      std::vector<std::vector<float>> out;
      const std::vector<absl::Status> st = ForwardAll(g, std::vector(ep, x), out);
      for (int r = 0; r < ep; ++r) {
        SCOPED_TRACE(testing::Message() << "rank " << r);
        ASSERT_TRUE(st[r].ok()) << st[r];
        ExpectClose(out[r], want.out);
        // k = 2, no shared expert: each expert sees the one-rank batch, and the all-reduce
        // adds at most two non-zero terms, so the result is bitwise the same.
        if (!shared) {
          EXPECT_EQ(out[r], want.out);
        }
        EXPECT_EQ(g.layers[r]->tokens_per_expert(), want.tokens_per_expert);  // all tokens
        const CollectiveStats d = Minus(g.comms[r]->stats(), before[r]);
        // One all-reduce of the [T, H] partials, nothing else (none at all on one rank).
        ExpectOnly(d, CollectiveKind::kAllReduce, ep > 1 && T > 0 ? 1 : 0, ep > 1 ? 4 * T * kH : 0);
      }
    }
  }
}

TEST_P(MoeEpTest, ShardedTokensMatchOneRankPerRankAndMoveOnlyRoutedRows) {
  const auto [ep, type] = GetParam();
  const int64_t El = kE / ep;
  for (bool shared : {false, true}) {
    const Spec s = MakeSpec(type, 200 + ep, shared);
    Group g = MakeGroup(s, ep, ExpertParallelism::kShardedTokens);
    const std::vector<std::vector<int64_t>> patterns = {
        {1, 1, 1, 1}, {13, 13, 13, 13}, {13, 0, 5, 1}, {0, 7, 0, 2}, {0, 0, 0, 0}};
    for (const std::vector<int64_t>& pattern : patterns) {
      std::vector<std::vector<float>> xs(ep);
      std::vector<OneRank> want(ep);
      std::vector<float> all;  // every rank's tokens, in rank order
      for (int r = 0; r < ep; ++r) {
        xs[r] = Random(pattern[r] * kH, 31 * r + pattern[r]);
        want[r] = Reference(s, xs[r]);
        all.insert(all.end(), xs[r].begin(), xs[r].end());
      }
      const OneRank whole = Reference(s, all);
      std::vector<CollectiveStats> before;
      for (int r = 0; r < ep; ++r) {
        before.push_back(g.comms[r]->stats());
        g.layers[r]->ResetTokensPerExpert();
      }
      std::vector<std::vector<float>> out;
      const std::vector<absl::Status> st = ForwardAll(g, xs, out);
      for (int r = 0; r < ep; ++r) {
        SCOPED_TRACE(testing::Message()
                     << "shared " << shared << " T " << pattern[0] << "," << pattern[1] << ","
                     << pattern[2] << "," << pattern[3] << " rank " << r);
        ASSERT_TRUE(st[r].ok()) << st[r];
        ExpectClose(out[r], want[r].out);
        // Each owner runs an expert over exactly the batch the one-rank layer would over all
        // ranks' tokens in rank order, so without a shared expert the result is bitwise that
        // layer's -- provided each rank's router matmul takes the same kernel path as the
        // concatenation's (MatMul special-cases T <= 4 tokens), as with 13 tokens per rank.
        int64_t first = 0;
        bool same_router_path = true;
        for (int q = 0; q < ep; ++q) {
          if (q < r) first += pattern[q];
          same_router_path &= pattern[q] == 0 || pattern[q] > 4;
        }
        if (!shared && same_router_path) {
          EXPECT_EQ(out[r], Rows(whole.out, first, pattern[r]));
        }
        EXPECT_EQ(g.layers[r]->tokens_per_expert(), want[r].tokens_per_expert);  // own tokens
        // From the one-rank router's assignment: rows r sends to peers' experts, rows peers
        // send to r's experts.
        int64_t sent = 0, received = 0;
        for (int64_t e = 0; e < kE; ++e) {
          if (e / El != r) sent += want[r].tokens_per_expert[e];
        }
        for (int src = 0; src < ep; ++src) {
          for (int64_t e = r * El; e < (r + 1) * El && src != r; ++e) {
            received += want[src].tokens_per_expert[e];
          }
        }
        const CollectiveStats d = Minus(g.comms[r]->stats(), before[r]);
        if (ep == 1) {
          ExpectOnly(d, CollectiveKind::kAllToAllV, 0, 0);
        } else {
          // counts (int64 per peer expert) + rows out + replies to rows in.
          ExpectOnly(d, CollectiveKind::kAllToAllV, 3,
                     8 * El * (ep - 1) + 4 * kH * sent + 4 * kH * received);
        }
      }
    }
  }
}

// DeepSeek-style selection bias (chooses, never weighs) puts every token on rank `to`'s
// experts: the others run no expert, and the result is bitwise the one-rank layer's. (With
// sharded tokens, the one-rank layer over all ranks' tokens in rank order: the owner runs
// each expert over exactly that batch, and a matmul row's rounding depends on the batch;
// 13 tokens per rank keep every router matmul on one kernel path, see the test above.)
TEST_P(MoeEpTest, RouterBiasedToOneRankIsExact) {
  const auto [ep, type] = GetParam();
  const int64_t El = kE / ep;
  RoutingParams p;
  p.method = kernels::RoutingMethod::kSigmoidGroupedTopK;
  p.top_k = 2;
  for (int to = 0; to < ep; ++to) {
    Spec s = MakeSpec(type, 300 + to, /*shared=*/false, p);
    s.bias.assign(kE, 0.0f);
    for (int64_t e = to * El; e < (to + 1) * El; ++e) s.bias[e] = 10.0f;
    for (ExpertParallelism mode :
         {ExpertParallelism::kReplicatedTokens, ExpertParallelism::kShardedTokens}) {
      SCOPED_TRACE(testing::Message() << "to rank " << to << " mode " << static_cast<int>(mode));
      Group g = MakeGroup(s, ep, mode);
      std::vector<std::vector<float>> xs(ep);
      for (int r = 0; r < ep; ++r) {
        xs[r] = Random(13 * kH, mode == ExpertParallelism::kShardedTokens ? 50 + r : 50);
      }
      std::vector<float> all;
      for (const std::vector<float>& x : xs) all.insert(all.end(), x.begin(), x.end());
      const OneRank whole = Reference(s, all);
      std::vector<std::vector<float>> out;
      const std::vector<absl::Status> st = ForwardAll(g, xs, out);
      for (int r = 0; r < ep; ++r) {
        SCOPED_TRACE(testing::Message() << "rank " << r);
        ASSERT_TRUE(st[r].ok()) << st[r];
        const OneRank want = Reference(s, xs[r]);
        for (int64_t e = 0; e < kE; ++e) {
          EXPECT_EQ(want.tokens_per_expert[e] > 0, e / El == to) << "expert " << e;
        }
        if (mode == ExpertParallelism::kReplicatedTokens) {
          EXPECT_EQ(out[r], want.out);
        } else {
          EXPECT_EQ(out[r], Rows(whole.out, 13 * r, 13));
          ExpectClose(out[r], want.out);
        }
        if (r != to) {  // no expert weights read
          EXPECT_EQ(g.layers[r]->bytes_read_last_forward(), kE * kH * 4);
        }
        if (mode == ExpertParallelism::kShardedTokens && ep > 1) {
          const int64_t rows_out = r == to ? 0 : 13 * 2, rows_in = r == to ? 13 * 2 * (ep - 1) : 0;
          ExpectOnly(g.comms[r]->stats(), CollectiveKind::kAllToAllV, 3,
                     8 * El * (ep - 1) + 4 * kH * (rows_out + rows_in));
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, MoeEpTest,
                         testing::Values(EpParam{1, DType::kF32}, EpParam{2, DType::kF32},
                                         EpParam{4, DType::kF32}, EpParam{1, DType::kQ8_0},
                                         EpParam{2, DType::kQ8_0}, EpParam{4, DType::kQ8_0}),
                         Name);

// A rank that stops participating at its n-th call: the others get DeadlineExceeded from
// the group's timeout instead of hanging; the dead rank itself sees Unavailable.
TEST(MoeEpFaultTest, DeadRankMakesTheOthersFailNotHang) {
  const Spec s = MakeSpec(DType::kF32, 400, /*shared=*/true);
  struct Case {
    ExpertParallelism mode;
    int64_t die_at;
  };
  for (int ep : {2, 4}) {
    for (const Case c :
         {Case{ExpertParallelism::kReplicatedTokens, 1}, Case{ExpertParallelism::kShardedTokens, 1},
          Case{ExpertParallelism::kShardedTokens, 2}, Case{ExpertParallelism::kShardedTokens, 3}}) {
      SCOPED_TRACE(testing::Message() << "ep " << ep << " mode " << static_cast<int>(c.mode)
                                      << " dies at call " << c.die_at);
      Group g = MakeGroup(s, ep, c.mode, absl::Milliseconds(200));
      g.comms[1]->DieAtCall(c.die_at);
      const std::vector<float> x = Random(13 * kH, 9);
      std::vector<std::vector<float>> out;
      const auto start = std::chrono::steady_clock::now();
      const std::vector<absl::Status> st = ForwardAll(g, std::vector(ep, x), out);
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
      for (int r = 0; r < ep; ++r) {
        EXPECT_EQ(st[r].code(),
                  r == 1 ? absl::StatusCode::kUnavailable : absl::StatusCode::kDeadlineExceeded)
            << "rank " << r << ": " << st[r];
      }
    }
  }
}

TEST(MoeEpCreateTest, RefusesBadGroupsWithClearMessages) {
  const Spec s = MakeSpec(DType::kF32, 500);
  auto four = InProcessCommunicator::MakeGroup(4);
  auto two = InProcessCommunicator::MakeGroup(2);
  {  // E = 6 over 4 ranks
    MoeWeights w = Weights(s, 0, 2);
    w.router = Make(DType::kF32, {6, kH}, s.router);
    const absl::Status st =
        MoeLayer::Create(std::move(w), s.routing, four[0].get(), ExpertParallelism::kShardedTokens)
            .status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("6 experts do not split evenly over 4 expert-parallel ranks"),
              std::string::npos)
        << st;
    EXPECT_NE(st.message().find("valid ep for this model: 1, 2, 3, 6"), std::string::npos) << st;
  }
  {  // all 8 experts handed to one of 2 ranks
    const absl::Status st = MoeLayer::Create(Weights(s, 0, kE), s.routing, two[1].get(),
                                             ExpertParallelism::kReplicatedTokens)
                                .status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("holds E / ep = 8 / 2 = 4 experts"), std::string::npos) << st;
  }
  {  // a multi-rank group without a mode
    const absl::Status st = MoeLayer::Create(Weights(s, 0, 4), s.routing, two[0].get()).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented) << st;
  }
  {  // the placement table: contiguous blocks
    absl::StatusOr<std::unique_ptr<MoeLayer>> layer = MoeLayer::Create(
        Weights(s, 4, 2), s.routing, four[2].get(), ExpertParallelism::kShardedTokens);
    ASSERT_TRUE(layer.ok()) << layer.status();
    EXPECT_EQ((*layer)->local_experts(), 2);
    for (int32_t e = 0; e < kE; ++e) {
      EXPECT_EQ((*layer)->physical_of_logical()[e], (ExpertSlot{e / 2, e % 2})) << e;
    }
  }
}

}  // namespace
}  // namespace tessera::parallel
