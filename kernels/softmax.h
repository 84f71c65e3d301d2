// Row-wise softmax, numerically stable (the row maximum is subtracted before exp).
//
// Dims: T rows, N columns.
//   x [T, N] f32, in place.
// A row whose entries are all -inf becomes NaN, as in PyTorch. The fast version uses a
// polynomial exp (relative error ~2e-7) with AVX2 and splits rows over the thread pool.
#pragma once

#include "kernels/tensor.h"

namespace tessera::kernels {

void Softmax(Tensor x);
void SoftmaxReference(Tensor x);

}  // namespace tessera::kernels
