// MatMul (fast) and MatMulQ8Activations against MatMulReference for every weight type over
// odd shapes.
//
// MatMul keeps activations f32, so it must match the reference to f32 rounding: 1e-5 of the
// output norm, and 1e-5 of each output's Cauchy-Schwarz scale |x_t|·|w_n| (a single dot
// product can cancel to near zero). T covers the fused decode path (1, 3, 4), the f32 tile
// path (5, 17, 64: remainders of the 4×3 micro-kernel and several token blocks), and the
// portable path (ForcePortableForTesting; also run the binary with TESSERA_NO_AVX2=1).
//
// MatMulQ8Activations, per case:
//  1. vs reference on the same f32 x: the honest end-to-end error, which for quantized w
//     includes the 8-bit quantization of activations. Bounded by 1e-2 of the output norm
//     when there are >= 13 outputs, and by 5e-3 of |x_t|·|w_n| per output;
//  2. vs reference on x already rounded through the activation quantizer: isolates the
//     integer kernels, which must then agree to f32 rounding (1e-5).
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

enum class Path { kReference, kFast, kQ8Activations };

std::vector<float> RunMatMul(Path path, const std::vector<float>& x, const std::vector<uint8_t>& w,
                             DType type, int64_t t, int64_t k, int64_t n) {
  std::vector<float> out(t * n, -7.0f);
  Tensor o(out.data(), DType::kF32, {t, n});
  ConstTensor xv(x.data(), DType::kF32, {t, k});
  ConstTensor wv(w.data(), type, {n, k});
  switch (path) {
    case Path::kReference:
      MatMulReference(o, xv, wv);
      break;
    case Path::kFast:
      MatMul(o, xv, wv);
      break;
    case Path::kQ8Activations:
      MatMulQ8Activations(o, xv, wv);
      break;
  }
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
    case 1:
      return {7, 96, 577};
    case 32:
      return {32, 96, 224, 576};
    default:
      return {256, 768, 1280};
  }
}

std::string TypeName(DType type) {
  const auto name = Name(type);
  return std::string(name.data(), name.size());
}

class MatMulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatMulTest, FastMatchesReference) {
  const DType type = GetParam();
  double worst_norm = 0, worst_scaled = 0, worst_portable = 0;
  uint32_t seed = 1;
  for (int64_t k : Ks(type)) {
    for (int64_t t : {1, 3, 4, 5, 17, 64}) {
      for (int64_t n : {1, 13, 67}) {
        SCOPED_TRACE(TypeName(type) + " T=" + std::to_string(t) + " K=" + std::to_string(k) +
                     " N=" + std::to_string(n));
        const auto x = RandomFloats(t * k, seed++);
        const auto w = RandomMatrix(type, n, k, seed++);
        const auto ref = RunMatMul(Path::kReference, x, w, type, t, k, n);

        const auto fast = RunMatMul(Path::kFast, x, w, type, t, k, n);
        const double scaled = MaxScaledError(fast, ref, x, w, type, t, k, n);
        EXPECT_LT(scaled, 1e-5);
        worst_scaled = std::max(worst_scaled, scaled);
        if (t * n >= 13) {
          const double e = RelNormError(fast, ref);
          EXPECT_LT(e, 1e-5);
          worst_norm = std::max(worst_norm, e);
        }

        simd::ForcePortableForTesting(true);
        const double ep = RelNormError(RunMatMul(Path::kFast, x, w, type, t, k, n), ref);
        simd::ForcePortableForTesting(false);
        EXPECT_LT(ep, 1e-5);
        worst_portable = std::max(worst_portable, ep);
      }
    }
  }
  std::printf(
      "[ accuracy ] %-5s MatMul vs reference: norm %.2e, per-output/(|x||w|) %.2e; "
      "portable %.2e%s\n",
      TypeName(type).c_str(), worst_norm, worst_scaled, worst_portable,
      simd::HasAvx2() ? "" : " (no AVX2: all portable)");
}

TEST_P(MatMulTest, Q8ActivationsWithinItsBound) {
  const DType type = GetParam();
  const bool quantized = Info(type).quantized;
  double worst_e2e = 0, worst_scaled = 0, worst_kernel = 0;
  uint32_t seed = 1;
  for (int64_t k : Ks(type)) {
    for (int64_t t : {1, 3, 17}) {
      for (int64_t n : {1, 13, 67}) {
        SCOPED_TRACE(TypeName(type) + " T=" + std::to_string(t) + " K=" + std::to_string(k) +
                     " N=" + std::to_string(n));
        const auto x = RandomFloats(t * k, seed++);
        const auto w = RandomMatrix(type, n, k, seed++);
        const auto ref = RunMatMul(Path::kReference, x, w, type, t, k, n);

        const auto q8 = RunMatMul(Path::kQ8Activations, x, w, type, t, k, n);
        const double scaled = MaxScaledError(q8, ref, x, w, type, t, k, n);
        EXPECT_LT(scaled, quantized ? 5e-3 : 1e-5);
        worst_scaled = std::max(worst_scaled, scaled);
        if (t * n >= 13) {
          const double e2e = RelNormError(q8, ref);
          EXPECT_LT(e2e, quantized ? 1e-2 : 1e-5);
          worst_e2e = std::max(worst_e2e, e2e);
        }

        if (quantized && simd::HasAvx2()) {
          const auto xr = RoundThroughQ8(x, t, k);
          const double ek = RelNormError(RunMatMul(Path::kQ8Activations, xr, w, type, t, k, n),
                                         RunMatMul(Path::kReference, xr, w, type, t, k, n));
          EXPECT_LT(ek, 1e-5);
          worst_kernel = std::max(worst_kernel, ek);
        }
      }
    }
  }
  std::printf(
      "[ accuracy ] %-5s Q8Activations vs reference: norm %.2e, per-output/(|x||w|) "
      "%.2e; same 8-bit x %.2e\n",
      TypeName(type).c_str(), worst_e2e, worst_scaled, worst_kernel);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulTest, ::testing::ValuesIn(testing::kAllTypes),
                         [](const auto& info) { return TypeName(info.param); });

TEST(MatMul, SameResultForAnyThreadCount) {
  const int64_t k = 256, n = 301;
  const int before = NumThreads();
  for (Path path : {Path::kFast, Path::kQ8Activations}) {
    for (int64_t t : {1, 5, 40}) {  // fused, tile, several tile token blocks
      SCOPED_TRACE("path " + std::to_string(static_cast<int>(path)) + " T=" + std::to_string(t));
      const auto x = RandomFloats(t * k, 11);
      const auto w = RandomMatrix(DType::kQ4_K, n, k, 12);
      SetNumThreads(1);
      const auto one = RunMatMul(path, x, w, DType::kQ4_K, t, k, n);
      SetNumThreads(3);
      const auto three = RunMatMul(path, x, w, DType::kQ4_K, t, k, n);
      EXPECT_EQ(one, three);
    }
  }
  SetNumThreads(before);
}

}  // namespace
}  // namespace tessera::kernels
