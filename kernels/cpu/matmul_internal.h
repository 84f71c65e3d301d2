// Internals of the CPU MatMul shared by matmul.cc and matmul_avx2.cc. Not a public API.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::kernels::internal {

// 32 activations quantized to 8 bits: x[i] ≈ d * q[i], q in [-127, 127]; s = d * sum(q),
// used by weight types with an offset (Q4_0's -8, Q4_1's min, Q4_K's mins, ...).
struct BlockQ8 {
  float d;
  float s;
  int8_t q[32];
};
static_assert(sizeof(BlockQ8) == 40);

// out[k/32] <- x[k]; k a multiple of 32. Round to nearest.
void QuantizeRowQ8(BlockQ8* out, const float* x, int64_t k);

// Dots one row of w (k elements, stored as the kernel's DType) with nt (1..4) activation
// rows: out[t * out_stride] = w · x_t, x_t at x + t * x_stride bytes. Activations are f32
// for F32/F16/BF16 weights and BlockQ8 rows for quantized ones.
using RowDotFn = void (*)(float* out, int64_t out_stride, const uint8_t* w, const uint8_t* x,
                          int64_t x_stride, int64_t k, int nt);

// The AVX2+FMA+F16C kernel for weights of type t. Call only when simd::HasAvx2().
RowDotFn Avx2RowDot(DType t);

}  // namespace tessera::kernels::internal
