// AVX2 helpers shared by the MatMul kernel files (matmul_avx2_*.cc). Not a public API.
//
// Every function carries the target attribute, so the files that include this build into a
// default x86-64 binary; callers reach them only after simd::HasAvx2().
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define TESSERA_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TESSERA_AVX2_INLINE TESSERA_AVX2 inline __attribute__((always_inline))

namespace tessera::kernels::internal {

TESSERA_AVX2_INLINE float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

TESSERA_AVX2_INLINE float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace tessera::kernels::internal
