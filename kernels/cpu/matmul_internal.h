// Internals of the CPU MatMul shared by matmul.cc and the matmul_avx2_*.cc kernel files.
// Not a public API. Every function here is pure on caller-owned buffers and thread-safe.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::kernels::internal {

// ---- f32 activations (MatMul) ------------------------------------------------------------

// Dots rows of w (k elements each, stored as the kernel's DType; row r at w + r * w_stride
// bytes) with nt (1..4) f32 rows of x: out[t * out_stride + r] = w_r · x_t, x_t = x +
// t * x_stride floats. Weights are decoded to f32 in registers and each decoded vector is
// used by all nt tokens. For quantized w, xsum + t * (k / 32) holds x_t's sums over each 32
// elements (XSums32); unused (may be null) for F32/F16/BF16.
using RowsDotF32Fn = void (*)(float* out, int64_t out_stride, const uint8_t* w, int64_t w_stride,
                              int64_t rows, const float* x, const float* xsum, int64_t x_stride,
                              int64_t k, int nt);
RowsDotF32Fn Avx2RowsDotF32Act(DType t);

// out[t * (k/32) + j] = sum of x[t * k + 32j + i], i < 32; k a multiple of 32.
void XSums32(float* out, const float* x, int64_t t, int64_t k);
// out[k] f32 <- one row of w (k elements of type t): DequantizeRow with AVX2. Bit-identical
// to DequantizeRow up to the f32 rounding of d*q + m (fused here).
using DequantizeRowFn = void (*)(float* out, const uint8_t* w, int64_t k);
DequantizeRowFn Avx2DequantizeRow(DType t);

// f32 register-blocked product of a tile: out[t * out_stride + r] = w_r · x_t for r < rows,
// t < tokens; w_r = w + r * w_stride floats, x_t = x + t * x_stride floats, k elements each.
void Avx2DotTile(float* out, int64_t out_stride, const float* w, int64_t w_stride, int64_t rows,
                 const float* x, int64_t x_stride, int64_t tokens, int64_t k);

// ---- 8-bit activations (MatMulQ8Activations) ---------------------------------------------

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

// Dots one row of quantized w (k elements) with nt (1..4) BlockQ8 activation rows:
// out[t * out_stride] = w · x_t, x_t at x + t * x_stride bytes.
using RowDotFn = void (*)(float* out, int64_t out_stride, const uint8_t* w, const uint8_t* x,
                          int64_t x_stride, int64_t k, int nt);

// The kernel for quantized weights of type t; nullptr for F32/F16/BF16 and the quantized
// types that have none yet.
RowDotFn Avx2RowDotQ8Act(DType t);

// The Avx2* functions above: call only when simd::HasAvx2().

}  // namespace tessera::kernels::internal
