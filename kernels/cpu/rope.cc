#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/cpu/check.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {
namespace {

void CheckShapes(const Tensor& qk, int64_t head_dim) {
  TESSERA_KCHECK(qk.type == DType::kF32 && qk.device == Device::kCpu, "Rope: qk must be CPU f32");
  TESSERA_KCHECK(head_dim > 0 && head_dim % 2 == 0, "Rope: head_dim must be even");
  TESSERA_KCHECK(qk.cols() % head_dim == 0, "Rope: qk must be [T, heads*D]");
}

// The two elements of pair i in a head, for each layout.
inline void PairIndex(RopeLayout layout, int64_t i, int64_t half, int64_t* a, int64_t* b) {
  switch (layout) {
    case RopeLayout::kAdjacentPairs:
      *a = 2 * i;
      *b = 2 * i + 1;
      return;
    case RopeLayout::kRotateHalf:
      *a = i;
      *b = i + half;
      return;
  }
}

}  // namespace

std::vector<double> RopeInvFreq(int64_t head_dim, float theta, const RopeScaling& s) {
  const int64_t half = head_dim / 2;
  std::vector<double> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    inv[i] = 1.0 / std::pow(static_cast<double>(theta), 2.0 * i / static_cast<double>(head_dim));
  }
  switch (s.kind) {
    case RopeScaling::kNone:
      break;
    case RopeScaling::kLinear:
      for (double& f : inv) f /= s.factor;
      break;
    case RopeScaling::kLlama3: {
      const double old_ctx = static_cast<double>(s.original_context);
      const double low_wavelen = old_ctx / s.low_freq_factor;
      const double high_wavelen = old_ctx / s.high_freq_factor;
      for (double& f : inv) {
        const double wavelen = 2 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f /= s.factor;  // low frequency: scaled
        } else if (wavelen >= high_wavelen) {  // medium: interpolate
          const double smooth =
              (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          f = (1 - smooth) * f / s.factor + smooth * f;
        }  // high frequency: kept
      }
      break;
    }
    case RopeScaling::kYarn: {
      const double d = static_cast<double>(head_dim);
      auto correction_dim = [&](double rotations) {
        return d * std::log(static_cast<double>(s.original_context) / (rotations * 2 * std::numbers::pi)) /
               (2 * std::log(static_cast<double>(theta)));
      };
      double lo = correction_dim(s.beta_fast), hi = correction_dim(s.beta_slow);
      if (s.truncate) lo = std::floor(lo), hi = std::ceil(hi);
      lo = std::max(lo, 0.0), hi = std::min(hi, d - 1);
      if (lo == hi) hi += 0.001;  // as transformers does
      for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((static_cast<double>(i) - lo) / (hi - lo), 0.0, 1.0);
        inv[i] = inv[i] / s.factor * ramp + inv[i] * (1 - ramp);
      }
      break;
    }
  }
  if (!s.freq_factors.empty()) {
    TESSERA_KCHECK(static_cast<int64_t>(s.freq_factors.size()) == half,
                   "Rope: freq_factors must hold head_dim / 2 values");
    for (int64_t i = 0; i < half; ++i) inv[i] /= s.freq_factors[i];
  }
  return inv;
}

void Rope(Tensor qk, const int32_t* positions, int64_t head_dim, float theta, RopeLayout layout,
          const RopeScaling& scaling) {
  CheckShapes(qk, head_dim);
  const int64_t half = head_dim / 2, width = qk.cols(), heads = width / head_dim;
  const std::vector<double> inv = RopeInvFreq(head_dim, theta, scaling);
  ParallelFor(qk.rows(), 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> cos(half), sin(half);
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t i = 0; i < half; ++i) {  // once per token, shared by every head
        const double angle = positions[t] * inv[i];
        cos[i] = static_cast<float>(std::cos(angle) * scaling.attention_factor);
        sin[i] = static_cast<float>(std::sin(angle) * scaling.attention_factor);
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* x = qk.as<float>() + t * width + h * head_dim;
        switch (layout) {
          case RopeLayout::kAdjacentPairs:
            for (int64_t i = 0; i < half; ++i) {
              const float a = x[2 * i], b = x[2 * i + 1];
              x[2 * i] = a * cos[i] - b * sin[i];
              x[2 * i + 1] = a * sin[i] + b * cos[i];
            }
            break;
          case RopeLayout::kRotateHalf:
            for (int64_t i = 0; i < half; ++i) {  // contiguous halves: vectorizes
              const float a = x[i], b = x[i + half];
              x[i] = a * cos[i] - b * sin[i];
              x[i + half] = a * sin[i] + b * cos[i];
            }
            break;
        }
      }
    }
  });
}

void RopeReference(Tensor qk, const int32_t* positions, int64_t head_dim, float theta,
                   RopeLayout layout, const RopeScaling& scaling) {
  CheckShapes(qk, head_dim);
  const int64_t half = head_dim / 2, width = qk.cols();
  const std::vector<double> inv = RopeInvFreq(head_dim, theta, scaling);
  for (int64_t t = 0; t < qk.rows(); ++t) {
    for (int64_t h = 0; h < width / head_dim; ++h) {
      float* x = qk.as<float>() + t * width + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        int64_t a = 0, b = 0;
        PairIndex(layout, i, half, &a, &b);
        const double angle = positions[t] * inv[i], m = scaling.attention_factor;
        const double xa = x[a], xb = x[b];
        x[a] = static_cast<float>(m * (xa * std::cos(angle) - xb * std::sin(angle)));
        x[b] = static_cast<float>(m * (xa * std::sin(angle) + xb * std::cos(angle)));
      }
    }
  }
}

}  // namespace tessera::kernels
