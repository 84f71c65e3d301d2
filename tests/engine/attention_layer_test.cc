// AttentionLayer: a step of mixed decode and prefill over the paged cache equals attention
// computed from scratch over each whole sequence (dense projections, RoPE, causal or
// sliding-window softmax, GQA, qk-norm); and on 2 in-process tp ranks, each holding only
// its heads' shard and its own KV cache, the layer's output equals the one-rank layer's.
#include "runtime/engine/attention_layer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "kernels/rms_norm.h"
#include "parallel/inprocess_communicator.h"
#include "parallel/communicator.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernels::ConstTensor;
using kernels::DType;
using kernels::OwnedTensor;
using kernels::Tensor;

constexpr int64_t H = 32, Hq = 4, Hkv = 2, D = 8;
constexpr float kTheta = 10000.0f, kEps = 1e-6f;

OwnedTensor F32(std::vector<int64_t> dims, const float* v) {
  return kernels::testing::Stored(DType::kF32, dims, v);
}

// The full model's weights, row-major [out, in], and their per-rank slices.
struct FullWeights {
  std::vector<float> q = kernels::testing::RandomFloats(Hq * D * H, 1, -0.3f, 0.3f);
  std::vector<float> k = kernels::testing::RandomFloats(Hkv * D * H, 2, -0.3f, 0.3f);
  std::vector<float> v = kernels::testing::RandomFloats(Hkv * D * H, 3);
  std::vector<float> o = kernels::testing::RandomFloats(H * Hq * D, 4, -0.3f, 0.3f);
  std::vector<float> q_bias = kernels::testing::RandomFloats(Hq * D, 5, -0.1f, 0.1f);
  std::vector<float> q_norm = kernels::testing::RandomFloats(D, 6, 0.5f, 1.5f);
  std::vector<float> k_norm = kernels::testing::RandomFloats(D, 7, 0.5f, 1.5f);

  // Rank `r` of `tp`: rows of Q/K/V (its heads), columns of O.
  AttentionWeights Shard(int r, int tp, bool qk_norm, parallel::Communicator* comm) const {
    const int64_t qr = Hq * D / tp, kr = Hkv * D / tp;
    std::vector<float> os(H * qr);
    for (int64_t i = 0; i < H; ++i) {
      std::memcpy(os.data() + i * qr, o.data() + i * Hq * D + r * qr, 4 * qr);
    }
    AttentionWeights w;
    w.q = parallel::ColumnParallelLinear(F32({qr, H}, q.data() + r * qr * H),
                                         F32({qr}, q_bias.data() + r * qr));
    w.k = parallel::ColumnParallelLinear(F32({kr, H}, k.data() + r * kr * H), std::nullopt);
    w.v = parallel::ColumnParallelLinear(F32({kr, H}, v.data() + r * kr * H), std::nullopt);
    w.o = parallel::RowParallelLinear(F32({H, qr}, os.data()), std::nullopt, comm);
    if (qk_norm) w.q_norm = F32({D}, q_norm.data()), w.k_norm = F32({D}, k_norm.data());
    return w;
  }
};

// Attention of one whole sequence x [n, H] from scratch; rows [n, H].
std::vector<float> Reference(const FullWeights& w, const std::vector<float>& x, int64_t window,
                             bool qk_norm) {
  const int64_t n = static_cast<int64_t>(x.size()) / H;
  auto project = [&](const std::vector<float>& W, int64_t rows, const float* bias) {
    std::vector<float> y(n * rows);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < rows; ++j) {
        double s = bias ? bias[j] : 0;
        for (int64_t i = 0; i < H; ++i) s += double(x[t * H + i]) * W[j * H + i];
        y[t * rows + j] = static_cast<float>(s);
      }
    }
    return y;
  };
  std::vector<float> q = project(w.q, Hq * D, w.q_bias.data());
  std::vector<float> k = project(w.k, Hkv * D, nullptr), v = project(w.v, Hkv * D, nullptr);
  if (qk_norm) {
    kernels::RmsNormReference(Tensor(q.data(), DType::kF32, {n * Hq, D}),
                              ConstTensor(q.data(), DType::kF32, {n * Hq, D}),
                              ConstTensor(w.q_norm.data(), DType::kF32, {D}), kEps);
    kernels::RmsNormReference(Tensor(k.data(), DType::kF32, {n * Hkv, D}),
                              ConstTensor(k.data(), DType::kF32, {n * Hkv, D}),
                              ConstTensor(w.k_norm.data(), DType::kF32, {D}), kEps);
  }
  std::vector<int32_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(t);
  kernels::RopeReference(Tensor(q.data(), DType::kF32, {n, Hq * D}), pos.data(), D, kTheta,
                         kernels::RopeLayout::kRotateHalf, {});
  kernels::RopeReference(Tensor(k.data(), DType::kF32, {n, Hkv * D}), pos.data(), D, kTheta,
                         kernels::RopeLayout::kRotateHalf, {});
  std::vector<float> attn(n * Hq * D);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = h / (Hq / Hkv);
      std::vector<double> p(n, 0);
      double mx = -INFINITY, z = 0;
      for (int64_t s = 0; s <= t; ++s) {
        if (window > 0 && t - s >= window) continue;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(q[t * Hq * D + h * D + d]) * k[s * Hkv * D + kh * D + d];
        p[s] = dot / std::sqrt(double(D));
        mx = std::max(mx, p[s]);
      }
      for (int64_t s = 0; s <= t; ++s) {
        p[s] = (window > 0 && t - s >= window) ? 0 : std::exp(p[s] - mx);
        z += p[s];
      }
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t s = 0; s <= t; ++s) acc += p[s] * v[s * Hkv * D + kh * D + d];
        attn[t * Hq * D + h * D + d] = static_cast<float>(acc / z);
      }
    }
  }
  std::vector<float> out(n * H);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < H; ++j) {
      double s = 0;
      for (int64_t i = 0; i < Hq * D; ++i) s += double(attn[t * Hq * D + i]) * w.o[j * Hq * D + i];
      out[t * H + j] = static_cast<float>(s);
    }
  }
  return out;
}

// Two steps on one rank's layer: sequence 1 prefills 5 tokens; then sequence 1 decodes its
// 6th token while sequence 2 prefills 7. Returns step 2's output rows [8, H].
absl::StatusOr<std::vector<float>> RunTwoSteps(const AttentionLayer& layer, int64_t kv_heads,
                                               const std::vector<float>& x1,
                                               const std::vector<float>& x2) {
  auto cache = KvCache::Create({.layers = 1, .kv_dim = kv_heads * D, .block_size = 4,
                                .num_blocks = 8});
  if (!cache.ok()) return cache.status();
  std::vector<float> out;
  for (int step = 0; step < 2; ++step) {
    std::vector<KvCache::Append> appends;
    std::vector<float> x;
    if (step == 0) {
      appends = {{1, 5}};
      x.assign(x1.begin(), x1.begin() + 5 * H);
    } else {
      appends = {{1, 1}, {2, 7}};
      x.assign(x1.begin() + 5 * H, x1.end());
      x.insert(x.end(), x2.begin(), x2.end());
    }
    auto plan = (*cache)->PlanAppend(appends);
    if (!plan.ok()) return plan.status();
    if (absl::Status s = (*cache)->Reserve(*plan); !s.ok()) return s;
    std::vector<SeqId> seqs;
    std::vector<kernels::PagedSeq> paged;
    std::vector<int32_t> positions;
    int64_t row = 0;
    for (const KvCache::Append& a : appends) {
      const int64_t start = (*cache)->length(a.seq);
      seqs.push_back(a.seq);
      paged.push_back({.q_begin = row, .q_len = a.tokens, .first_position = start,
                       .kv_len = start + a.tokens, .blocks = (*cache)->blocks().BlockTable(a.seq)});
      for (int64_t i = 0; i < a.tokens; ++i) positions.push_back(static_cast<int32_t>(start + i));
      row += a.tokens;
    }
    std::vector<float> scratch(row * layer.scratch_per_token());
    out.assign(row * H, 0);
    if (absl::Status s = layer.Forward(Tensor(out.data(), DType::kF32, {row, H}),
                                       ConstTensor(x.data(), DType::kF32, {row, H}),
                                       {.seqs = seqs, .paged = paged, .positions = positions},
                                       **cache, scratch);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = (*cache)->Commit(*plan); !s.ok()) return s;
  }
  return out;
}

AttentionOptions Options(int tp, int64_t window) {
  return {.layer = 0, .heads = Hq / tp, .kv_heads = Hkv / tp, .head_dim = D, .norm_eps = kEps,
          .rope_theta = kTheta, .window = window};
}

double MaxDiff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

TEST(AttentionLayer, MixedStepMatchesAttentionFromScratch) {
  const FullWeights w;
  const std::vector<float> x1 = kernels::testing::RandomFloats(6 * H, 10);
  const std::vector<float> x2 = kernels::testing::RandomFloats(7 * H, 11);
  std::unique_ptr<parallel::Communicator> solo = parallel::MakeSoloCommunicator();
  for (const int64_t window : {int64_t{0}, int64_t{3}}) {
    for (const bool qk_norm : {false, true}) {
      SCOPED_TRACE(testing::Message() << "window " << window << ", qk-norm " << qk_norm);
      const AttentionLayer layer(w.Shard(0, 1, qk_norm, solo.get()), Options(1, window));
      auto got = RunTwoSteps(layer, Hkv, x1, x2);
      ASSERT_TRUE(got.ok()) << got.status();
      const std::vector<float> want1 = Reference(w, x1, window, qk_norm);
      const std::vector<float> want2 = Reference(w, x2, window, qk_norm);
      // Row 0: sequence 1's 6th token; rows 1..7: sequence 2.
      EXPECT_LT(MaxDiff(got->data(), want1.data() + 5 * H, H), 1e-5);
      EXPECT_LT(MaxDiff(got->data() + H, want2.data(), 7 * H), 1e-5);
    }
  }
}

TEST(AttentionLayer, TwoTensorParallelShardsEqualOneRank) {
  const FullWeights w;
  const std::vector<float> x1 = kernels::testing::RandomFloats(6 * H, 20);
  const std::vector<float> x2 = kernels::testing::RandomFloats(7 * H, 21);
  std::unique_ptr<parallel::Communicator> solo = parallel::MakeSoloCommunicator();
  const AttentionLayer whole(w.Shard(0, 1, true, solo.get()), Options(1, 0));
  auto want = RunTwoSteps(whole, Hkv, x1, x2);
  ASSERT_TRUE(want.ok()) << want.status();

  std::vector<std::unique_ptr<parallel::Communicator>> group =
      parallel::InProcessCommunicator::MakeGroup(2);
  std::vector<absl::StatusOr<std::vector<float>>> got(2, absl::UnknownError("not run"));
  std::vector<int64_t> bytes(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      const AttentionLayer shard(w.Shard(r, 2, true, group[r].get()), Options(2, 0));
      bytes[r] = shard.bytes();
      got[r] = RunTwoSteps(shard, Hkv / 2, x1, x2);  // each rank caches only its KV head
    });
  }
  for (std::thread& t : ranks) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(got[r].ok()) << got[r].status();
    EXPECT_LT(MaxDiff(got[r]->data(), want->data(), 8 * H), 1e-5) << "rank " << r;
    // Each holds half the projections (the [D] qk-norm weights are replicated).
    EXPECT_EQ(bytes[r], (whole.bytes() - 2 * D * 4) / 2 + 2 * D * 4);
  }
}

}  // namespace
}  // namespace tessera
