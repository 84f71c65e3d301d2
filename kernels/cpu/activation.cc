#include "kernels/activation.h"

#include <cmath>

#include "kernels/cpu/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace tessera::kernels {
namespace {

void CheckShapes(const Tensor& out, const ConstTensor& gate, const ConstTensor& up) {
  TESSERA_KCHECK(out.type == DType::kF32 && gate.type == DType::kF32 && up.type == DType::kF32,
                 "gated activation: all tensors must be f32");
  TESSERA_KCHECK(out.device == Device::kCpu && gate.device == Device::kCpu &&
                     up.device == Device::kCpu,
                 "gated activation: CPU kernel handed a non-CPU tensor");
  TESSERA_KCHECK(gate.rows() == up.rows() && gate.cols() == up.cols() &&
                     out.rows() == up.rows() && out.cols() == up.cols(),
                 "gated activation: out, gate and up must all be [T, F]");
}

// Rows in parallel, `row(out, gate, up, n)` over each chunk.
template <typename RowFn>
void Gated(Tensor out, ConstTensor gate, ConstTensor up, RowFn row) {
  CheckShapes(out, gate, up);
  const int64_t f = up.cols();
  ParallelFor(up.rows(), std::max<int64_t>(1, 16384 / std::max<int64_t>(f, 1)),
              [&](int64_t t0, int64_t t1) {
                row(out.as<float>() + t0 * f, gate.as<const float>() + t0 * f,
                    up.as<const float>() + t0 * f, (t1 - t0) * f);
              });
}

}  // namespace

void SwiGlu(Tensor out, ConstTensor gate, ConstTensor up) { Gated(out, gate, up, simd::SwiGluRow); }

void GeGlu(Tensor out, ConstTensor gate, ConstTensor up) { Gated(out, gate, up, simd::GeGluRow); }

void GeGluReference(Tensor out, ConstTensor gate, ConstTensor up) {
  CheckShapes(out, gate, up);
  for (int64_t i = 0; i < up.numel(); ++i) {
    const double g = gate.as<const float>()[i];
    const double gelu = 0.5 * g * (1.0 + std::tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
    out.as<float>()[i] = static_cast<float>(gelu * up.as<const float>()[i]);
  }
}

void SwiGluReference(Tensor out, ConstTensor gate, ConstTensor up) {
  CheckShapes(out, gate, up);
  for (int64_t i = 0; i < up.numel(); ++i) {
    const float g = gate.as<const float>()[i];
    out.as<float>()[i] = g / (1.0f + std::exp(-g)) * up.as<const float>()[i];
  }
}

}  // namespace tessera::kernels
