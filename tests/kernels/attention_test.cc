// Attention against an independent naive implementation (and against AttentionReference):
// MHA/GQA/MQA, causal masking with arbitrary positions, sliding windows, fully masked
// queries, and the log-sum-exp output, including the ring-attention merge of two halves.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernel_test_util.h"

namespace tessera::kernels {
namespace {

using testing::RandomFloats;

struct Case {
  int64_t t, s, hq, hkv, d, window;
};

struct Result {
  std::vector<float> out, lse;
};

Result RunFast(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
               const std::vector<float>& v, const std::vector<int32_t>& qp,
               const std::vector<int32_t>& kp, bool reference = false) {
  Result r{std::vector<float>(c.t * c.hq * c.d, 9.0f), std::vector<float>(c.t * c.hq, 9.0f)};
  Tensor out(r.out.data(), DType::kF32, {c.t, c.hq * c.d});
  Tensor lse(r.lse.data(), DType::kF32, {c.t, c.hq});
  ConstTensor qv(q.data(), DType::kF32, {c.t, c.hq * c.d});
  ConstTensor kv(k.data(), DType::kF32, {c.s, c.hkv * c.d});
  ConstTensor vv(v.data(), DType::kF32, {c.s, c.hkv * c.d});
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  if (reference) {
    AttentionReference(out, lse, qv, kv, vv, qp.data(), kp.data(), c.d, c.window, scale);
  } else {
    Attention(out, lse, qv, kv, vv, qp.data(), kp.data(), c.d, c.window, scale);
  }
  return r;
}

// softmax(Q Kᵀ * scale + mask) V for one head, in double, materializing the score matrix.
Result Naive(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
             const std::vector<float>& v, const std::vector<int32_t>& qp,
             const std::vector<int32_t>& kp) {
  Result r{std::vector<float>(c.t * c.hq * c.d), std::vector<float>(c.t * c.hq)};
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  for (int64_t h = 0; h < c.hq; ++h) {
    const int64_t g = h / (c.hq / c.hkv);
    for (int64_t i = 0; i < c.t; ++i) {
      std::vector<double> sc(c.s, -INFINITY);
      for (int64_t j = 0; j < c.s; ++j) {
        const bool causal = kp[j] <= qp[i];
        const bool in_window = c.window == 0 || qp[i] - kp[j] < c.window;
        if (!causal || !in_window) continue;
        double dot = 0;
        for (int64_t e = 0; e < c.d; ++e) dot += double(q[(i * c.hq + h) * c.d + e]) * k[(j * c.hkv + g) * c.d + e];
        sc[j] = dot * scale;
      }
      const double m = *std::max_element(sc.begin(), sc.end());
      double sum = 0;
      for (double& x : sc) sum += (x = std::isinf(x) ? 0 : std::exp(x - m));
      for (int64_t e = 0; e < c.d; ++e) {
        double acc = 0;
        for (int64_t j = 0; j < c.s; ++j) acc += sc[j] * v[(j * c.hkv + g) * c.d + e];
        r.out[(i * c.hq + h) * c.d + e] = sum > 0 ? static_cast<float>(acc / sum) : 0.0f;
      }
      r.lse[i * c.hq + h] = sum > 0 ? static_cast<float>(m + std::log(sum)) : -INFINITY;
    }
  }
  return r;
}

void ExpectClose(const Result& a, const Result& b, const char* what) {
  for (size_t i = 0; i < b.out.size(); ++i) ASSERT_NEAR(a.out[i], b.out[i], 2e-5) << what << " out " << i;
  for (size_t i = 0; i < b.lse.size(); ++i) {
    if (std::isinf(b.lse[i])) {
      ASSERT_TRUE(std::isinf(a.lse[i]) && a.lse[i] < 0) << what << " lse " << i;
    } else {
      ASSERT_NEAR(a.lse[i], b.lse[i], 2e-5 * std::max(1.0f, std::fabs(b.lse[i]))) << what << " lse " << i;
    }
  }
}

TEST(Attention, MatchesNaiveAcrossShapes) {
  const Case cases[] = {
      {1, 1, 1, 1, 8, 0},       {3, 3, 4, 4, 16, 0},     {17, 17, 8, 2, 64, 0},
      {1, 300, 6, 2, 64, 0},    {5, 300, 4, 1, 32, 0},   {17, 40, 9, 3, 24, 0},
      {7, 260, 4, 2, 64, 50},   {3, 9, 2, 1, 8, 1},      {1, 129, 3, 3, 40, 128},
  };
  uint32_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "T=" << c.t << " S=" << c.s << " Hq=" << c.hq
                                      << " Hkv=" << c.hkv << " D=" << c.d << " window=" << c.window);
    const auto q = RandomFloats(c.t * c.hq * c.d, seed++, -2, 2);
    const auto k = RandomFloats(c.s * c.hkv * c.d, seed++, -2, 2);
    const auto v = RandomFloats(c.s * c.hkv * c.d, seed++);
    // The cache holds positions 0..S-1; the queries are the last T of them (prefill/decode).
    std::vector<int32_t> kp(c.s), qp(c.t);
    for (int64_t j = 0; j < c.s; ++j) kp[j] = static_cast<int32_t>(j);
    for (int64_t i = 0; i < c.t; ++i) qp[i] = static_cast<int32_t>(c.s - c.t + i);
    const Result naive = Naive(c, q, k, v, qp, kp);
    ExpectClose(RunFast(c, q, k, v, qp, kp), naive, "fast");
    ExpectClose(RunFast(c, q, k, v, qp, kp, /*reference=*/true), naive, "reference");
  }
}

TEST(Attention, UnorderedPositionsAndFullyMaskedQuery) {
  const Case c{3, 6, 2, 1, 8, 0};
  const auto q = RandomFloats(c.t * c.hq * c.d, 1), k = RandomFloats(c.s * c.d, 2),
             v = RandomFloats(c.s * c.d, 3);
  const std::vector<int32_t> kp = {10, 4, 7, 20, 5, 11}, qp = {3, 10, 6};  // query 0 sees nothing
  const Result fast = RunFast(c, q, k, v, qp, kp);
  ExpectClose(fast, Naive(c, q, k, v, qp, kp), "fast");
  for (int64_t e = 0; e < c.hq * c.d; ++e) EXPECT_EQ(fast.out[e], 0.0f);
  EXPECT_TRUE(std::isinf(fast.lse[0]) && fast.lse[0] < 0);
}

// Attention over the whole cache equals the log-sum-exp merge of attention over two halves,
// as ring attention will combine partial results.
TEST(Attention, LseMergeOfTwoHalvesEqualsWhole) {
  const Case whole{4, 200, 4, 2, 32, 0}, half{4, 100, 4, 2, 32, 0};
  const auto q = RandomFloats(whole.t * whole.hq * whole.d, 7, -2, 2);
  const auto k = RandomFloats(whole.s * whole.hkv * whole.d, 8, -2, 2);
  const auto v = RandomFloats(whole.s * whole.hkv * whole.d, 9);
  std::vector<int32_t> kp(whole.s), qp = {150, 160, 198, 199};
  for (int64_t j = 0; j < whole.s; ++j) kp[j] = static_cast<int32_t>(j);
  const Result all = RunFast(whole, q, k, v, qp, kp);
  const size_t kv_half = half.s * half.hkv * half.d;
  auto part = [&](size_t first) {
    return RunFast(half, q, std::vector<float>(k.begin() + first * kv_half, k.begin() + (first + 1) * kv_half),
                   std::vector<float>(v.begin() + first * kv_half, v.begin() + (first + 1) * kv_half), qp,
                   std::vector<int32_t>(kp.begin() + first * half.s, kp.begin() + (first + 1) * half.s));
  };
  const Result a = part(0), b = part(1);
  for (int64_t i = 0; i < whole.t * whole.hq; ++i) {
    const float mx = std::max(a.lse[i], b.lse[i]), mn = std::min(a.lse[i], b.lse[i]);
    const float lse = mx + std::log1p(std::exp(mn - mx));
    EXPECT_NEAR(lse, all.lse[i], 1e-5);
    for (int64_t e = 0; e < whole.d; ++e) {
      const float merged = a.out[i * whole.d + e] * std::exp(a.lse[i] - lse) +
                           b.out[i * whole.d + e] * std::exp(b.lse[i] - lse);
      EXPECT_NEAR(merged, all.out[i * whole.d + e], 2e-5);
    }
  }
}

}  // namespace
}  // namespace tessera::kernels
