// Vector helpers for CPU kernels, with runtime ISA dispatch.
//
// Each helper has an AVX2+FMA version (compiled with a target attribute, so the default
// build runs on any x86-64) and a portable one; the choice is made once per process from
// the CPU's features. Pure functions on caller-owned buffers; thread-safe.
#pragma once

#include <cstdint>

namespace tessera::kernels::simd {

// True when the CPU has AVX2, FMA and F16C and TESSERA_NO_AVX2 is unset (or "0").
bool HasAvx2();
// Tests only: forces the portable paths (true) or restores the detected choice (false).
void ForcePortableForTesting(bool portable);

// sum_i a[i] * b[i]
float Dot(const float* a, const float* b, int64_t n);
// y[i] += alpha * x[i]
void Axpy(float* y, float alpha, const float* x, int64_t n);
// y[i] *= alpha
void Scale(float* y, float alpha, int64_t n);
// sum_i x[i]^2
float SumSquares(const float* x, int64_t n);
// x[i] = exp(x[i] - max); returns the sum of the new x. Relative error about 2e-7 per
// element on the AVX2 path (polynomial exp), exact std::exp on the portable one.
float ExpSubSum(float* x, int64_t n, float max);
// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
void SwiGluRow(float* out, const float* gate, const float* up, int64_t n);
// out[i] = gelu(gate[i]) * up[i], gelu's tanh approximation written as
// g / (1 + exp(-2 sqrt(2/pi) (g + 0.044715 g^3))).
void GeGluRow(float* out, const float* gate, const float* up, int64_t n);

// Row conversions between f32 and the 16-bit storage types (KV cache, weights):
// out[i] = float(src[i]); and out[i] = src[i] rounded to nearest even (overflow to inf,
// NaN stays NaN). Both paths give the same bits for every non-NaN value.
void HalfToFloatRow(float* out, const uint16_t* src, int64_t n);
void Bf16ToFloatRow(float* out, const uint16_t* src, int64_t n);
void FloatToHalfRow(uint16_t* out, const float* src, int64_t n);
void FloatToBf16Row(uint16_t* out, const float* src, int64_t n);

}  // namespace tessera::kernels::simd
