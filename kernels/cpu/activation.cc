#include "kernels/activation.h"

#include <cmath>

#include "kernels/cpu/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {
namespace {

void CheckShapes(const Tensor& out, const ConstTensor& gate, const ConstTensor& up) {
  TESSERA_KCHECK(out.type == DType::kF32 && gate.type == DType::kF32 && up.type == DType::kF32,
                 "SwiGlu: all tensors must be f32");
  TESSERA_KCHECK(out.device == Device::kCpu && gate.device == Device::kCpu &&
                     up.device == Device::kCpu,
                 "SwiGlu: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(gate.rows() == up.rows() && gate.cols() == up.cols() &&
                     out.rows() == up.rows() && out.cols() == up.cols(),
                 "SwiGlu: out, gate and up must all be [T, F]");
}

}  // namespace

void SwiGlu(Tensor out, ConstTensor gate, ConstTensor up) {
  CheckShapes(out, gate, up);
  const int64_t f = up.cols();
  ParallelFor(up.rows(), std::max<int64_t>(1, 16384 / std::max<int64_t>(f, 1)),
              [&](int64_t t0, int64_t t1) {
                simd::SwiGluRow(out.as<float>() + t0 * f, gate.as<const float>() + t0 * f,
                                up.as<const float>() + t0 * f, (t1 - t0) * f);
              });
}

void SwiGluReference(Tensor out, ConstTensor gate, ConstTensor up) {
  CheckShapes(out, gate, up);
  for (int64_t i = 0; i < up.numel(); ++i) {
    const float g = gate.as<const float>()[i];
    out.as<float>()[i] = g / (1.0f + std::exp(-g)) * up.as<const float>()[i];
  }
}

}  // namespace tessera::kernels
