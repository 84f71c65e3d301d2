// MatMul (fast) against MatMulReference for every weight type over odd shapes.
//
// Three comparisons per case:
//  1. fast vs reference on the same f32 x: the honest end-to-end error, which for quantized
//     w includes the 8-bit quantization of activations. Bounded by 1e-2 of the output norm
//     when there are >= 13 outputs; a single dot product can cancel to near zero, so each
//     output's error is also bounded by 5e-3 of its Cauchy-Schwarz scale |x_t|·|w_n|;
//  2. fast vs reference on x already rounded through the activation quantizer: isolates
//     the integer kernels, which must then agree to f32 rounding (1e-5);
//  3. the portable (no-AVX2) path vs reference (1e-5).
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dequant.h"

namespace tessera::kernels {
namespace {

using testing::RandomFloats;
using testing::RandomMatrix;
using testing::RelNormError;

std::vector<float> RunMatMul(bool fast, const std::vector<float>& x, const std::vector<uint8_t>& w,
                       DType type, int64_t t, int64_t k, int64_t n) {
  std::vector<float> out(t * n, -7.0f);
  Tensor o(out.data(), DType::kF32, {t, n});
  ConstTensor xv(x.data(), DType::kF32, {t, k});
  ConstTensor wv(w.data(), type, {n, k});
  fast ? MatMul(o, xv, wv) : MatMulReference(o, xv, wv);
  return out;
}

// x rounded to what the fast path's activation quantizer keeps.
std::vector<float> RoundThroughQ8(const std::vector<float>& x, int64_t t, int64_t k) {
  std::vector<internal::BlockQ8> q(k / 32);
  std::vector<float> out(x.size());
  for (int64_t r = 0; r < t; ++r) {
    internal::QuantizeRowQ8(q.data(), x.data() + r * k, k);
    for (int64_t b = 0; b < k / 32; ++b) {
      for (int i = 0; i < 32; ++i) out[r * k + b * 32 + i] = q[b].d * q[b].q[i];
    }
  }
  return out;
}

// max over outputs of |fast - ref| / (|x_t| |w_n|).
double MaxScaledError(const std::vector<float>& fast, const std::vector<float>& ref,
                      const std::vector<float>& x, const std::vector<uint8_t>& w, DType type,
                      int64_t t, int64_t k, int64_t n) {
  std::vector<float> row(k);
  std::vector<double> wnorm(n), xnorm(t);
  for (int64_t j = 0; j < n; ++j) {
    DequantizeRow(row.data(), w.data() + j * *BytesFor(type, k), type, k);
    for (float v : row) wnorm[j] += double(v) * v;
  }
  for (int64_t i = 0; i < t * k; ++i) xnorm[i / k] += double(x[i]) * x[i];
  double worst = 0;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double err = std::fabs(double(fast[i * n + j]) - ref[i * n + j]);
      worst = std::max(worst, err / std::sqrt(xnorm[i] * wnorm[j]));
    }
  }
  return worst;
}

std::vector<int64_t> Ks(DType type) {
  switch (Info(type).block_elems) {
    case 1: return {7, 96, 577};
    case 32: return {32, 96, 224, 576};
    default: return {256, 768, 1280};
  }
}

class MatMulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatMulTest, FastMatchesReference) {
  const DType type = GetParam();
  const bool quantized = Info(type).quantized;
  double worst_e2e = 0, worst_scaled = 0, worst_kernel = 0, worst_portable = 0;
  uint32_t seed = 1;
  for (int64_t k : Ks(type)) {
    for (int64_t t : {1, 3, 17}) {
      for (int64_t n : {1, 13, 67}) {
        SCOPED_TRACE(std::string(Name(type).data(), Name(type).size()) + " T=" +
                     std::to_string(t) + " K=" + std::to_string(k) + " N=" + std::to_string(n));
        const auto x = RandomFloats(t * k, seed++);
        const auto w = RandomMatrix(type, n, k, seed++);
        const auto ref = RunMatMul(false, x, w, type, t, k, n);

        const auto fast = RunMatMul(true, x, w, type, t, k, n);
        const double scaled = MaxScaledError(fast, ref, x, w, type, t, k, n);
        EXPECT_LT(scaled, quantized ? 5e-3 : 1e-6);
        worst_scaled = std::max(worst_scaled, scaled);
        if (t * n >= 13) {
          const double e2e = RelNormError(fast, ref);
          EXPECT_LT(e2e, quantized ? 1e-2 : 1e-5);
          worst_e2e = std::max(worst_e2e, e2e);
        }

        if (quantized && simd::HasAvx2()) {
          const auto xr = RoundThroughQ8(x, t, k);
          const double ek = RelNormError(RunMatMul(true, xr, w, type, t, k, n),
                                         RunMatMul(false, xr, w, type, t, k, n));
          EXPECT_LT(ek, 1e-5);
          worst_kernel = std::max(worst_kernel, ek);
        }

        simd::ForcePortableForTesting(true);
        const double ep = RelNormError(RunMatMul(true, x, w, type, t, k, n), ref);
        simd::ForcePortableForTesting(false);
        EXPECT_LT(ep, 1e-5);
        worst_portable = std::max(worst_portable, ep);
      }
    }
  }
  std::printf("[ accuracy ] %-5s fast vs reference: norm %.2e, per-output/(|x||w|) %.2e; "
              "same 8-bit x %.2e; portable %.2e\n",
              Name(type).data(), worst_e2e, worst_scaled, worst_kernel, worst_portable);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulTest, ::testing::ValuesIn(testing::kAllTypes),
                         [](const auto& info) {
                           return std::string(Name(info.param).data(), Name(info.param).size());
                         });

TEST(MatMul, SameResultForAnyThreadCount) {
  const int64_t t = 5, k = 256, n = 301;
  const auto x = RandomFloats(t * k, 11);
  const auto w = RandomMatrix(DType::kQ4_K, n, k, 12);
  const int before = NumThreads();
  SetNumThreads(1);
  const auto one = RunMatMul(true, x, w, DType::kQ4_K, t, k, n);
  SetNumThreads(3);
  const auto three = RunMatMul(true, x, w, DType::kQ4_K, t, k, n);
  SetNumThreads(before);
  EXPECT_EQ(one, three);
}

}  // namespace
}  // namespace tessera::kernels
