#include "kernels/cpu/simd.h"

#include <cpuid.h>
#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/avx2_util.h"
#include "kernels/dequant.h"

namespace tessera::kernels::simd {
namespace {

using internal::Exp8;
using internal::HSum;

bool DetectAvx2() {
  if (const char* env = std::getenv("TESSERA_NO_AVX2"); env && std::strcmp(env, "0") != 0) {
    return false;
  }
  __builtin_cpu_init();
  // F16C from CPUID leaf 1 (ECX bit 29): clang before 15 has no __builtin_cpu_supports("f16c").
  unsigned eax, ebx, ecx, edx;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

std::atomic<bool> g_force_portable{false};

TESSERA_AVX2 float DotAvx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = HSum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

TESSERA_AVX2 void AxpyAvx2(float* y, float alpha, const float* x, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += alpha * x[i];
}

TESSERA_AVX2 void ScaleAvx2(float* y, float alpha, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= alpha;
}

TESSERA_AVX2 float ExpSubSumAvx2(float* x, int64_t n, float max) {
  const __m256 vm = _mm256_set1_ps(max);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float s = HSum(acc);
  for (; i < n; ++i) s += (x[i] = std::exp(x[i] - max));
  return s;
}

// x * sigmoid(a(x)) * up, with a(x) = x for silu and 2 * sqrt(2 / pi) * (x + 0.044715 x^3)
// for gelu's tanh approximation (0.5 x (1 + tanh(u)) = x * sigmoid(2u)).
constexpr float kGeluA = 1.5957691216057308f;  // 2 * sqrt(2 / pi)
constexpr float kGeluB = 0.044715f;

inline float GeluTanh(float x) { return x / (1.0f + std::exp(-kGeluA * (x + kGeluB * x * x * x))); }
inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

template <bool kGelu>
TESSERA_AVX2 void GatedRowAvx2(float* out, const float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    __m256 a = g;
    if constexpr (kGelu) {
      const __m256 g3 = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
      a = _mm256_mul_ps(_mm256_set1_ps(kGeluA), _mm256_fmadd_ps(_mm256_set1_ps(kGeluB), g3, g));
    }
    const __m256 e = Exp8(_mm256_xor_ps(a, sign));  // exp(-a)
    const __m256 act = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(act, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = (kGelu ? GeluTanh(gate[i]) : Silu(gate[i])) * up[i];
}

TESSERA_AVX2 void HalfToFloatRowAvx2(float* out, const uint16_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(src[i]);
}

TESSERA_AVX2 void Bf16ToFloatRowAvx2(float* out, const uint16_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  for (; i < n; ++i) out[i] = Bf16ToFloat(src[i]);
}

TESSERA_AVX2 void FloatToHalfRowAvx2(uint16_t* out, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = FloatToHalf(src[i]);
}

}  // namespace

bool HasAvx2() {
  static const bool detected = DetectAvx2();
  return detected && !g_force_portable.load(std::memory_order_relaxed);
}

void ForcePortableForTesting(bool portable) { g_force_portable.store(portable); }

float Dot(const float* a, const float* b, int64_t n) {
  if (HasAvx2()) return DotAvx2(a, b, n);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float* y, float alpha, const float* x, int64_t n) {
  if (HasAvx2()) return AxpyAvx2(y, alpha, x, n);
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void Scale(float* y, float alpha, int64_t n) {
  if (HasAvx2()) return ScaleAvx2(y, alpha, n);
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

float SumSquares(const float* x, int64_t n) { return Dot(x, x, n); }

float ExpSubSum(float* x, int64_t n, float max) {
  if (HasAvx2()) return ExpSubSumAvx2(x, n, max);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - max));
  return s;
}

void SwiGluRow(float* out, const float* gate, const float* up, int64_t n) {
  if (HasAvx2()) return GatedRowAvx2<false>(out, gate, up, n);
  for (int64_t i = 0; i < n; ++i) out[i] = Silu(gate[i]) * up[i];
}

void GeGluRow(float* out, const float* gate, const float* up, int64_t n) {
  if (HasAvx2()) return GatedRowAvx2<true>(out, gate, up, n);
  for (int64_t i = 0; i < n; ++i) out[i] = GeluTanh(gate[i]) * up[i];
}

void HalfToFloatRow(float* out, const uint16_t* src, int64_t n) {
  if (HasAvx2()) return HalfToFloatRowAvx2(out, src, n);
  for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(src[i]);
}

void Bf16ToFloatRow(float* out, const uint16_t* src, int64_t n) {
  if (HasAvx2()) return Bf16ToFloatRowAvx2(out, src, n);
  for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(src[i]);
}

void FloatToHalfRow(uint16_t* out, const float* src, int64_t n) {
  if (HasAvx2()) return FloatToHalfRowAvx2(out, src, n);
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToHalf(src[i]);
}

// The compiler vectorises this one well enough: it runs once per stored K/V row.
void FloatToBf16Row(uint16_t* out, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToBf16(src[i]);
}

}  // namespace tessera::kernels::simd
