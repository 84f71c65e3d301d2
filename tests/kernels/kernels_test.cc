// Element-wise and row kernels against their references: RmsNorm, Softmax, SwiGlu,
// EmbeddingLookup (every DType), RoPE (hand-computed cases, layout equivalence, Llama 3
// scaling), and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <numbers>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/embedding.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/softmax.h"

namespace tessera::kernels {
namespace {

using testing::MaxRelError;
using testing::RandomFloats;

constexpr int64_t kTokens[] = {1, 3, 17};
constexpr int64_t kWidths[] = {1, 7, 64, 577};

TEST(RmsNorm, MatchesReference) {
  for (int64_t t : kTokens) {
    for (int64_t h : kWidths) {
      const auto x = RandomFloats(t * h, 1 + t * h, -3, 3);
      const auto w = RandomFloats(h, 2 + h);
      std::vector<float> fast(t * h), ref(t * h);
      RmsNorm(Tensor(fast.data(), DType::kF32, {t, h}), ConstTensor(x.data(), DType::kF32, {t, h}),
              ConstTensor(w.data(), DType::kF32, {h}), 1e-5f);
      RmsNormReference(Tensor(ref.data(), DType::kF32, {t, h}),
                       ConstTensor(x.data(), DType::kF32, {t, h}),
                       ConstTensor(w.data(), DType::kF32, {h}), 1e-5f);
      EXPECT_LT(MaxRelError(fast, ref), 1e-6) << "T=" << t << " H=" << h;
    }
  }
}

TEST(RmsNorm, HandComputed) {
  std::vector<float> x = {3, 4}, w = {1, 2}, out(2);  // rms = sqrt(12.5)
  RmsNorm(Tensor(out.data(), DType::kF32, {1, 2}), ConstTensor(x.data(), DType::kF32, {1, 2}),
          ConstTensor(w.data(), DType::kF32, {2}), 0.0f);
  EXPECT_NEAR(out[0], 3 / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(out[1], 8 / std::sqrt(12.5f), 1e-6);
}

TEST(Softmax, MatchesReferenceAndIsStable) {
  for (int64_t t : kTokens) {
    for (int64_t n : kWidths) {
      auto fast = RandomFloats(t * n, 3 + t * n, -30, 30);
      fast[0] = 1000.0f;  // would overflow a naive exp
      auto ref = fast;
      Softmax(Tensor(fast.data(), DType::kF32, {t, n}));
      SoftmaxReference(Tensor(ref.data(), DType::kF32, {t, n}));
      for (size_t i = 0; i < ref.size(); ++i) {
        ASSERT_NEAR(fast[i], ref[i], 1e-6 + 1e-5 * ref[i]) << "T=" << t << " N=" << n << " i=" << i;
      }
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += fast[i];
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

// SwiGlu and GeGlu (the tanh gelu against a double-precision tanh), on the AVX2 path and
// the portable one.
TEST(GatedActivation, SwiGluAndGeGluMatchTheirReferences) {
  using Fn = void (*)(Tensor, ConstTensor, ConstTensor);
  const std::pair<Fn, Fn> kinds[] = {{SwiGlu, SwiGluReference}, {GeGlu, GeGluReference}};
  for (bool portable : {false, true}) {
    simd::ForcePortableForTesting(portable);
    for (auto [fast_fn, ref_fn] : kinds) {
      for (int64_t t : kTokens) {
        for (int64_t f : kWidths) {
          const auto gate = RandomFloats(t * f, 5 + f, -20, 20), up = RandomFloats(t * f, 6 + f);
          std::vector<float> fast(t * f), ref(t * f);
          fast_fn(Tensor(fast.data(), DType::kF32, {t, f}),
                  ConstTensor(gate.data(), DType::kF32, {t, f}),
                  ConstTensor(up.data(), DType::kF32, {t, f}));
          ref_fn(Tensor(ref.data(), DType::kF32, {t, f}),
                 ConstTensor(gate.data(), DType::kF32, {t, f}),
                 ConstTensor(up.data(), DType::kF32, {t, f}));
          for (size_t i = 0; i < ref.size(); ++i) {
            ASSERT_NEAR(fast[i], ref[i], 1e-6 + 1e-5 * std::fabs(ref[i]))
                << "i=" << i << " gate " << gate[i] << " portable " << portable;
          }
        }
      }
    }
  }
  simd::ForcePortableForTesting(false);
}

TEST(EmbeddingLookup, EveryTypeMatchesReference) {
  for (DType type : testing::kAllTypes) {
    const int64_t v = 11, h = Info(type).block_elems == 256 ? 512 : 96;
    const auto table = testing::RandomMatrix(type, v, h, 42);
    const std::vector<int32_t> ids = {3, 0, 10, 3, 7};
    const int64_t t = static_cast<int64_t>(ids.size());
    std::vector<float> fast(t * h), ref(t * h);
    ConstTensor tv(table.data(), type, {v, h});
    EmbeddingLookup(Tensor(fast.data(), DType::kF32, {t, h}), tv, ids.data(), t);
    EmbeddingLookupReference(Tensor(ref.data(), DType::kF32, {t, h}), tv, ids.data(), t);
    EXPECT_EQ(fast, ref) << Name(type);
  }
}

// ---- RoPE ---------------------------------------------------------------------------------

std::vector<float> ApplyRope(std::vector<float> x, int64_t t, int64_t d, std::vector<int32_t> pos,
                             RopeLayout layout, const RopeScaling& s = {}, bool reference = false) {
  Tensor v(x.data(), DType::kF32, {t, static_cast<int64_t>(x.size()) / t});
  reference ? RopeReference(v, pos.data(), d, 10000.0f, layout, s)
            : Rope(v, pos.data(), d, 10000.0f, layout, s);
  return x;
}

TEST(Rope, HandComputedBothLayouts) {
  // D = 4, theta = 10000: inv_freq = {1, 0.01}. Position 2: angles {2, 0.02}.
  const std::vector<float> x = {1, 2, 3, 4};
  const double c0 = std::cos(2.0), s0 = std::sin(2.0), c1 = std::cos(0.02), s1 = std::sin(0.02);
  const auto adj = ApplyRope(x, 1, 4, {2}, RopeLayout::kAdjacentPairs);  // pairs (1,2), (3,4)
  EXPECT_NEAR(adj[0], 1 * c0 - 2 * s0, 1e-6);
  EXPECT_NEAR(adj[1], 1 * s0 + 2 * c0, 1e-6);
  EXPECT_NEAR(adj[2], 3 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(adj[3], 3 * s1 + 4 * c1, 1e-6);
  const auto half = ApplyRope(x, 1, 4, {2}, RopeLayout::kRotateHalf);  // pairs (1,3), (2,4)
  EXPECT_NEAR(half[0], 1 * c0 - 3 * s0, 1e-6);
  EXPECT_NEAR(half[2], 1 * s0 + 3 * c0, 1e-6);
  EXPECT_NEAR(half[1], 2 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(half[3], 2 * s1 + 4 * c1, 1e-6);
  // Position 0 is the identity.
  EXPECT_EQ(ApplyRope(x, 1, 4, {0}, RopeLayout::kRotateHalf), x);
}

TEST(Rope, RotateHalfEqualsAdjacentPairsOnInterleavedHalves) {
  const int64_t t = 3, heads = 2, d = 64;
  const std::vector<int32_t> pos = {0, 5, 1234};
  const auto x = RandomFloats(t * heads * d, 9);
  std::vector<float> inter(x.size());  // y[2i] = x[i], y[2i+1] = x[i + D/2], per head
  for (int64_t r = 0; r < t * heads; ++r) {
    for (int64_t i = 0; i < d / 2; ++i) {
      inter[r * d + 2 * i] = x[r * d + i];
      inter[r * d + 2 * i + 1] = x[r * d + i + d / 2];
    }
  }
  const auto a = ApplyRope(x, t, d, pos, RopeLayout::kRotateHalf);
  const auto b = ApplyRope(inter, t, d, pos, RopeLayout::kAdjacentPairs);
  for (int64_t r = 0; r < t * heads; ++r) {
    for (int64_t i = 0; i < d / 2; ++i) {
      EXPECT_EQ(a[r * d + i], b[r * d + 2 * i]);
      EXPECT_EQ(a[r * d + i + d / 2], b[r * d + 2 * i + 1]);
    }
  }
}

TEST(Rope, MatchesReference) {
  const RopeScaling llama3{RopeScaling::kLlama3, 8.0f, 1.0f, 4.0f, 8192};
  const RopeScaling linear{RopeScaling::kLinear, 4.0f, 1, 4, 8192};
  for (const RopeScaling& s : {RopeScaling{}, linear, llama3}) {
    for (RopeLayout layout : {RopeLayout::kAdjacentPairs, RopeLayout::kRotateHalf}) {
      for (int64_t t : kTokens) {
        std::vector<int32_t> pos(t);
        for (int64_t i = 0; i < t; ++i) pos[i] = static_cast<int32_t>(i * 977 + 3);
        const auto x = RandomFloats(t * 3 * 128, 17 + t);
        EXPECT_LT(MaxRelError(ApplyRope(x, t, 128, pos, layout, s),
                              ApplyRope(x, t, 128, pos, layout, s, /*reference=*/true)),
                  1e-6);
      }
    }
  }
}

TEST(Rope, Llama3ScalingHandComputed) {
  // D = 8, theta = 10000: inv_freq = {1, 0.1, 0.01, 0.001}, wavelengths 2π/f =
  // {6.28, 62.8, 628, 6283}. With original_context 1000, low_freq_factor 1 and
  // high_freq_factor 4: wavelengths > 1000 are divided by factor 8, those < 250 kept, and
  // 628 is interpolated with smooth = (1000/628.3 - 1) / (4 - 1).
  const RopeScaling s{RopeScaling::kLlama3, 8.0f, 1.0f, 4.0f, 1000};
  const auto inv = RopeInvFreq(8, 10000.0f, s);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_NEAR(inv[0], 1.0, 1e-12);
  EXPECT_NEAR(inv[1], 0.1, 1e-12);
  const double smooth = (1000 / (2 * std::numbers::pi / 0.01) - 1) / 3;
  EXPECT_NEAR(inv[2], (1 - smooth) * 0.01 / 8 + smooth * 0.01, 1e-12);
  EXPECT_NEAR(inv[3], 0.001 / 8, 1e-12);
  const auto lin = RopeInvFreq(8, 10000.0f, {RopeScaling::kLinear, 4.0f, 1, 4, 0});
  EXPECT_NEAR(lin[1], 0.1 / 4, 1e-12);
  // GGUF's rope_freqs.weight: per-pair divisors, on top of any kind.
  RopeScaling f;
  f.freq_factors = {1.0f, 2.0f, 8.0f, 0.5f};
  const auto by_factor = RopeInvFreq(8, 10000.0f, f);
  EXPECT_NEAR(by_factor[0], 1.0, 1e-12);
  EXPECT_NEAR(by_factor[1], 0.1 / 2, 1e-12);
  EXPECT_NEAR(by_factor[2], 0.01 / 8, 1e-12);
  EXPECT_NEAR(by_factor[3], 0.001 / 0.5, 1e-12);
}

// ---- thread pool --------------------------------------------------------------------------

TEST(ThreadPool, CoversEveryIndexOnceAndNests) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 5, 1000}) {
    for (int64_t grain : {1, 7, 2000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
        EXPECT_LE(e - b, grain);
        pool.ParallelFor(e - b, 1, [&](int64_t b2, int64_t e2) {  // nested: runs inline
          for (int64_t i = b + b2; i < b + e2; ++i) hits[i]++;
        });
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << grain;
    }
  }
}

}  // namespace
}  // namespace tessera::kernels
