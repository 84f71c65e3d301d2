// RMS normalization (Llama's pre-norm): out = x / sqrt(mean(x^2) + eps) * weight.
//
// Dims: T tokens, H hidden.
//   out [T, H] f32    x [T, H] f32    weight [H] f32
// out may alias x (in place). Shapes are CHECKed. Thread-safe for distinct outputs; the
// fast version splits tokens over the default thread pool.
#pragma once

#include "kernels/tensor.h"

namespace tessera::kernels {

void RmsNorm(Tensor out, ConstTensor x, ConstTensor weight, float eps);
void RmsNormReference(Tensor out, ConstTensor x, ConstTensor weight, float eps);

}  // namespace tessera::kernels
