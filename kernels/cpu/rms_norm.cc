#include "kernels/rms_norm.h"

#include <cmath>

#include "kernels/cpu/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {
namespace {

void CheckShapes(const Tensor& out, const ConstTensor& x, const ConstTensor& weight) {
  TESSERA_KCHECK(out.type == DType::kF32 && x.type == DType::kF32 && weight.type == DType::kF32,
                 "RmsNorm: all tensors must be f32");
  TESSERA_KCHECK(out.device == Device::kCpu && x.device == Device::kCpu &&
                     weight.device == Device::kCpu,
                 "RmsNorm: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(weight.numel() == x.cols(), "RmsNorm: weight must be [H]");
  TESSERA_KCHECK(out.rows() == x.rows() && out.cols() == x.cols(), "RmsNorm: out must be [T, H]");
}

}  // namespace

void RmsNorm(Tensor out, ConstTensor x, ConstTensor weight, float eps) {
  CheckShapes(out, x, weight);
  const int64_t h = x.cols();
  const float* w = weight.as<const float>();
  ParallelFor(x.rows(), 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* xt = x.as<const float>() + t * h;
      float* yt = out.as<float>() + t * h;
      const float inv = 1.0f / std::sqrt(simd::SumSquares(xt, h) / static_cast<float>(h) + eps);
      for (int64_t i = 0; i < h; ++i) yt[i] = xt[i] * inv * w[i];  // vectorized by the compiler
    }
  });
}

void RmsNormReference(Tensor out, ConstTensor x, ConstTensor weight, float eps) {
  CheckShapes(out, x, weight);
  const int64_t h = x.cols();
  for (int64_t t = 0; t < x.rows(); ++t) {
    const float* xt = x.as<const float>() + t * h;
    float ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += xt[i] * xt[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(h) + eps);
    for (int64_t i = 0; i < h; ++i) out.as<float>()[t * h + i] = xt[i] * inv * weight.as<const float>()[i];
  }
}

}  // namespace tessera::kernels
