// AVX2 row-dot kernels for MatMulQ8Activations, one per quantized weight DType. Every
// function here carries the target attribute, so this file builds into a default x86-64
// binary; matmul.cc calls in only after simd::HasAvx2().
//
// Quantized weights meet 8-bit activations (BlockQ8, one per 32 elements): each weight block
// is unpacked to bytes in a register once and multiplied, with _mm256_maddubs_epi16 (unsigned
// weight byte × signed activation), against up to NT = 4 tokens; a per-block float scale
// d_w * d_x turns the integer sums into the f32 accumulator. Offsets (Q4_0's 8, Q5_0's 16,
// Q4_1/Q4_K mins) are applied once per block through BlockQ8::s = d_x * sum(q_x).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/matmul_internal.h"

namespace tessera::kernels::internal {
namespace {

// Sums of adjacent 4 products of unsigned bytes u and signed bytes s, as 8 floats.
TESSERA_AVX2 inline __m256 MulSumUS(__m256i u, __m256i s) {
  const __m256i p16 = _mm256_maddubs_epi16(u, s);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

// 16 bytes of packed nibbles -> 32 bytes: the low nibbles (elements 0..15), then the high.
TESSERA_AVX2 inline __m256i Nibbles(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Bit i of the 32-bit word at p -> byte i = 0xFF or 0x00 (llama.cpp's bytes_from_bits_32).
TESSERA_AVX2 inline __m256i BitsToBytes(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                         0x0101010101010101, 0x0000000000000000);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

TESSERA_AVX2 inline __m256i LoadQ(const BlockQ8& b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q));
}

inline const BlockQ8* Act(const uint8_t* x, int64_t x_stride, int t) {
  return reinterpret_cast<const BlockQ8*>(x + t * x_stride);
}

// ---- 32-element block types: x = d * (q - offset) or d * q + m -------------------------

// Unpacks one weight block: unsigned bytes q, the scale d and the per-block additive term
// `add` such that w · x = d * d_x * (q · q_x) + add * s_x.
struct Q8_0 {
  static constexpr int kBytes = 34;
};
struct Q4_0 {
  static constexpr int kBytes = 18;
  TESSERA_AVX2 static __m256i Unpack(const uint8_t* b, float* d, float* add) {
    *d = Half(b);
    *add = -8.0f * *d;
    return Nibbles(b + 2);
  }
};
struct Q4_1 {
  static constexpr int kBytes = 20;
  TESSERA_AVX2 static __m256i Unpack(const uint8_t* b, float* d, float* add) {
    *d = Half(b);
    *add = Half(b + 2);
    return Nibbles(b + 4);
  }
};
struct Q5_0 {
  static constexpr int kBytes = 22;
  TESSERA_AVX2 static __m256i Unpack(const uint8_t* b, float* d, float* add) {
    *d = Half(b);
    *add = -16.0f * *d;
    const __m256i hi = _mm256_and_si256(BitsToBytes(b + 2), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(Nibbles(b + 6), hi);
  }
};

// One weight block against NT tokens. Decode (NT = 1) alternates two accumulator sets over
// even and odd blocks so consecutive FMAs do not wait on each other.
template <typename B, int NT>
TESSERA_AVX2 inline __attribute__((always_inline)) void Step32(const uint8_t* w, const uint8_t* x,
                                                               int64_t xs, int64_t b,
                                                               __m256* acc, float* corr) {
  float d, add;
  const __m256i q = B::Unpack(w + b * B::kBytes, &d, &add);
  for (int t = 0; t < NT; ++t) {
    const BlockQ8& xb = Act(x, xs, t)[b];
    acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), MulSumUS(q, LoadQ(xb)), acc[t]);
    corr[t] += add * xb.s;
  }
}

template <typename B, int NT>
TESSERA_AVX2 void DotBlocks32(float* out, int64_t os, const uint8_t* w, const uint8_t* x,
                              int64_t xs, int64_t k) {
  __m256 acc0[NT], acc1[NT];
  float corr0[NT], corr1[NT];
  for (int t = 0; t < NT; ++t) {
    acc0[t] = acc1[t] = _mm256_setzero_ps();
    corr0[t] = corr1[t] = 0;
  }
  const int64_t nb = k / 32;
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    Step32<B, NT>(w, x, xs, b, acc0, corr0);
    Step32<B, NT>(w, x, xs, b + 1, acc1, corr1);
  }
  if (b < nb) Step32<B, NT>(w, x, xs, b, acc0, corr0);
  for (int t = 0; t < NT; ++t) {
    out[t * os] = HSum(_mm256_add_ps(acc0[t], acc1[t])) + corr0[t] + corr1[t];
  }
}

// Q8_0 is signed × signed: |w| times x with w's sign moved onto x.
template <int NT>
TESSERA_AVX2 inline __attribute__((always_inline)) void StepQ8_0(const uint8_t* w,
                                                                 const uint8_t* x, int64_t xs,
                                                                 int64_t b, __m256* acc) {
  const uint8_t* wb = w + b * Q8_0::kBytes;
  const float d = Half(wb);
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 2));
  const __m256i aq = _mm256_sign_epi8(q, q);
  for (int t = 0; t < NT; ++t) {
    const BlockQ8& xb = Act(x, xs, t)[b];
    const __m256 p = MulSumUS(aq, _mm256_sign_epi8(LoadQ(xb), q));
    acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), p, acc[t]);
  }
}

template <int NT>
TESSERA_AVX2 void DotQ8_0(float* out, int64_t os, const uint8_t* w, const uint8_t* x,
                          int64_t xs, int64_t k) {
  __m256 acc0[NT], acc1[NT];
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
  const int64_t nb = k / 32;
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    StepQ8_0<NT>(w, x, xs, b, acc0);
    StepQ8_0<NT>(w, x, xs, b + 1, acc1);
  }
  if (b < nb) StepQ8_0<NT>(w, x, xs, b, acc0);
  for (int t = 0; t < NT; ++t) out[t * os] = HSum(_mm256_add_ps(acc0[t], acc1[t]));
}

// ---- K-quants: 256-element super-blocks, eight BlockQ8 of activations each ---------------

inline void ScaleMinK4(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

template <int NT>
TESSERA_AVX2 void DotQ4_K(float* out, int64_t os, const uint8_t* w, const uint8_t* x,
                          int64_t xs, int64_t k) {
  __m256 acc[NT], acc1[NT];  // sub-blocks 2j and 2j+1: two independent FMA chains
  float corr[NT];
  for (int t = 0; t < NT; ++t) acc[t] = acc1[t] = _mm256_setzero_ps(), corr[t] = 0;
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (int64_t sb = 0; sb < k / 256; ++sb) {
    const uint8_t* wb = w + sb * 144;
    const float d = Half(wb), dmin = Half(wb + 2);
    for (int j = 0; j < 4; ++j) {  // sub-blocks 2j (low nibbles) and 2j+1 (high nibbles)
      int sc0, m0, sc1, m1;
      ScaleMinK4(2 * j, wb + 4, &sc0, &m0);
      ScaleMinK4(2 * j + 1, wb + 4, &sc1, &m1);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 16 + 32 * j));
      const __m256i q0 = _mm256_and_si256(q, low);
      const __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
      const float d0 = d * sc0, d1 = d * sc1, mm0 = dmin * m0, mm1 = dmin * m1;
      for (int t = 0; t < NT; ++t) {
        const BlockQ8* xb = Act(x, xs, t) + sb * 8 + 2 * j;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xb[0].d), MulSumUS(q0, LoadQ(xb[0])), acc[t]);
        acc1[t] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xb[1].d), MulSumUS(q1, LoadQ(xb[1])), acc1[t]);
        corr[t] += mm0 * xb[0].s + mm1 * xb[1].s;
      }
    }
  }
  for (int t = 0; t < NT; ++t) out[t * os] = HSum(_mm256_add_ps(acc[t], acc1[t])) - corr[t];
}

template <int NT>
TESSERA_AVX2 void DotQ6_K(float* out, int64_t os, const uint8_t* w, const uint8_t* x,
                          int64_t xs, int64_t k) {
  __m256 acc[2][NT];  // even and odd groups: two independent FMA chains
  for (int t = 0; t < NT; ++t) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3);
  const __m256i k32 = _mm256_set1_epi8(32);
  for (int64_t sb = 0; sb < k / 256; ++sb) {
    const uint8_t* wb = w + sb * 210;
    const auto* sc = reinterpret_cast<const int8_t*>(wb + 192);
    const float d = Half(wb + 208);
    for (int h = 0; h < 2; ++h) {  // two halves of 128 elements
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 128 + 32 * h));
      for (int g = 0; g < 4; ++g) {  // elements h*128 + g*32 + [0, 32)
        const __m256i ql = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(wb + 64 * h + 32 * (g & 1)));
        const __m256i lo4 = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (g >> 1))), low);
        const __m256i hi2 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * g)), two);
        const __m256i q = _mm256_or_si256(lo4, _mm256_slli_epi16(hi2, 4));  // 0..63
        const int8_t* s = sc + 8 * h + 2 * g;
        const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(s[1]), _mm_set1_epi16(s[0]));
        for (int t = 0; t < NT; ++t) {
          const BlockQ8& xb = Act(x, xs, t)[sb * 8 + h * 4 + g];
          const __m256i xq = LoadQ(xb);
          const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xq),
                                               _mm256_maddubs_epi16(k32, xq));  // (q-32)·x
          const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, scales));
          acc[g & 1][t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), p, acc[g & 1][t]);
        }
      }
    }
  }
  for (int t = 0; t < NT; ++t) out[t * os] = HSum(_mm256_add_ps(acc[0][t], acc[1][t]));
}

// Adapts a kernel family to RowDotFn: runtime nt (1..4) -> compile-time NT.
#define TESSERA_ROW_DOT(Name, Call)                                                     \
  struct Name {                                                                         \
    template <int NT>                                                                   \
    TESSERA_AVX2 static void Run(float* out, int64_t os, const uint8_t* w,              \
                                 const uint8_t* x, int64_t xs, int64_t k) {             \
      Call(out, os, w, x, xs, k);                                                       \
    }                                                                                   \
  };
TESSERA_ROW_DOT(KQ8_0, DotQ8_0<NT>)
TESSERA_ROW_DOT(KQ4_0, (DotBlocks32<Q4_0, NT>))
TESSERA_ROW_DOT(KQ4_1, (DotBlocks32<Q4_1, NT>))
TESSERA_ROW_DOT(KQ5_0, (DotBlocks32<Q5_0, NT>))
TESSERA_ROW_DOT(KQ4_K, DotQ4_K<NT>)
TESSERA_ROW_DOT(KQ6_K, DotQ6_K<NT>)
#undef TESSERA_ROW_DOT

template <typename K>
TESSERA_AVX2 void ByNt(float* out, int64_t os, const uint8_t* w, const uint8_t* x, int64_t xs,
                       int64_t k, int nt) {
  switch (nt) {
    case 1: return K::template Run<1>(out, os, w, x, xs, k);
    case 2: return K::template Run<2>(out, os, w, x, xs, k);
    case 3: return K::template Run<3>(out, os, w, x, xs, k);
    default: return K::template Run<4>(out, os, w, x, xs, k);
  }
}

}  // namespace

void QuantizeRowQ8(BlockQ8* out, const float* x, int64_t k) {
  for (int64_t b = 0; b < k / 32; ++b, x += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int q = static_cast<int>(std::nearbyint(x[i] * id));
      out[b].q[i] = static_cast<int8_t>(q);
      sum += q;
    }
    out[b].d = d;
    out[b].s = d * static_cast<float>(sum);
  }
}

RowDotFn Avx2RowDotQ8Act(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return nullptr;  // not quantized: MatMulQ8Activations takes the f32 path for these
    case DType::kQ8_0: return ByNt<KQ8_0>;
    case DType::kQ4_0: return ByNt<KQ4_0>;
    case DType::kQ4_1: return ByNt<KQ4_1>;
    case DType::kQ5_0: return ByNt<KQ5_0>;
    case DType::kQ4_K: return ByNt<KQ4_K>;
    case DType::kQ6_K: return ByNt<KQ6_K>;
    case DType::kQ5_1:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ5_K:
    case DType::kIQ4_NL:
    case DType::kIQ4_XS:
      return nullptr;  // no 8-bit kernel yet: MatMulQ8Activations takes the f32 path
    case DType::kU8:
    case DType::kI32:
      return nullptr;  // payload types: MatMul refuses them
  }
  return nullptr;  // unreachable: every enumerator is handled above
}

}  // namespace tessera::kernels::internal
