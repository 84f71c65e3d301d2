// Linear-layer matrix multiply: out = x · wᵀ, with w stored in any DType.
//
// Dims: T tokens (rows of x), K input features, N output features.
//   out [T, N] f32    x [T, K] f32    w [N, K] of any DType (row-major, as GGUF and
//   PyTorch store nn.Linear weights); K a whole number of w's blocks.
//
// MatMul is the fast path. With AVX2 (detected at run time) and a quantized w, each
// 32-element block of x is quantized to 8 bits (scale = max|x|/127, as llama.cpp's Q8_0
// activations) and dotted with the weight blocks in integers, so no weight is ever
// dequantized to memory; relative error of an output row is about 1e-3 (tests bound it by
// 1e-2). F32/F16/BF16 weights are converted in registers and dotted in f32. Up to four
// tokens share each decoded weight block, and a tile of w rows stays in cache while all T
// tokens pass over it, so prefill reads w once. Work is split over rows of w on the default
// thread pool. Without AVX2, a tile of w rows is dequantized to f32 and dotted in f32.
//
// MatMulReference is the plain definition: dequantize a row of w, f32 dot with each x row.
//
// Both: out must not alias x or w; shapes are CHECKed (a mismatch is a caller bug).
// Thread-safe for distinct outputs; MatMul allocates scratch for the quantized x.
#pragma once

#include "kernels/tensor.h"

namespace tessera::kernels {

void MatMul(Tensor out, ConstTensor x, ConstTensor w);
void MatMulReference(Tensor out, ConstTensor x, ConstTensor w);

}  // namespace tessera::kernels
