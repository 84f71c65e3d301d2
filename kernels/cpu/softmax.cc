#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {

void Softmax(Tensor x) {
  TESSERA_KCHECK(x.type == DType::kF32 && x.device == Device::kCpu, "Softmax: x must be CPU f32");
  const int64_t n = x.cols();
  ParallelFor(x.rows(), std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)),
              [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                  float* row = x.as<float>() + r * n;
                  const float max = *std::max_element(row, row + n);
                  const float sum = simd::ExpSubSum(row, n, max);
                  simd::Scale(row, 1.0f / sum, n);
                }
              });
}

void SoftmaxReference(Tensor x) {
  TESSERA_KCHECK(x.type == DType::kF32 && x.device == Device::kCpu, "Softmax: x must be CPU f32");
  const int64_t n = x.cols();
  for (int64_t r = 0; r < x.rows(); ++r) {
    float* row = x.as<float>() + r * n;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) max = std::max(max, row[i]);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (row[i] = std::exp(row[i] - max));
    for (int64_t i = 0; i < n; ++i) row[i] /= sum;
  }
}

}  // namespace tessera::kernels
