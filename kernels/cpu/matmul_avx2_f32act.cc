// AVX2 kernels for MatMul's f32-activation path. Weight blocks are decoded to f32 in
// registers (x is never quantized), then either dotted straight into per-token accumulators
// (Avx2RowsDotF32Act, for few tokens) or stored to a cache-resident f32 tile
// (Avx2DequantizeRow) that the f32 micro-kernel of matmul_avx2_tile.cc sweeps for many
// tokens.
//
// Weights follow the format's own affine map (Q4_1's d·q + m, Q4_K's d·sc·q − dmin·m,
// Q6_K's d·sc·(q − 32), ...); the fused dot applies it per 32-element unit as
// d·(q·x) + a·sum(x) (Q2_K, whose mins change every 16 elements, is decoded to finished
// weights), so results differ from MatMulReference only by f32 rounding and summation order.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/quant_layout.h"

namespace tessera::kernels::internal {
namespace {

// ---- Block decoders ---------------------------------------------------------------------
//
// A block of kElems elements (kBytes bytes) is read in units of 32 elements, each unit in
// four chunks of 8. Head(block) reads the block's scales once; Decode32<J>(block, head, q)
// sets q[c] = the integer values of chunk c of unit J as f32, and Scales<J>(head) gives the
// unit's affine map: weights of chunks 0-1 are d0 * q + a, of chunks 2-3 d1 * q + a (d0 ==
// d1 but for Q6_K, whose scales cover 16 elements). kOffset: a may be nonzero.

struct UnitScale {
  float d0, d1, a;
};

TESSERA_AVX2_INLINE __m256i Bytes8(const uint8_t* p) {  // 8 unsigned bytes -> 8 epi32
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Elements 0..15 of a 32-element nibble block are the low nibbles of qs[0..15], 16..31 the
// high ones: chunk c reads bytes 8(c&1) .. +8, low nibble for c < 2, high for c >= 2.
template <int C>
TESSERA_AVX2_INLINE __m256i Nibbles8(const uint8_t* qs) {
  const __m256i v = Bytes8(qs + 8 * (C & 1));
  return C < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(0x0F)) : _mm256_srli_epi32(v, 4);
}

// Scale d, offset a for the one unit of a 32-element block.
struct Head32 {
  float d, a;
};

struct Q8_0 {
  static constexpr int kElems = 32, kBytes = 34;
  static constexpr bool kOffset = false;
  TESSERA_AVX2_INLINE static Head32 Head(const uint8_t* b) { return {Half(b), 0.0f}; }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const Head32& h) {
    return {h.d, h.d, 0.0f};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const Head32&, __m256* q) {
    for (int c = 0; c < 4; ++c) {
      const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * c));
      q[c] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    }
  }
};

// x = d * q + a, q a nibble: Q4_0 (a = -8d) and Q4_1 (a = m).
template <bool kMin>
struct Q4 {
  static constexpr int kElems = 32, kBytes = kMin ? 20 : 18;
  static constexpr bool kOffset = true;
  TESSERA_AVX2_INLINE static Head32 Head(const uint8_t* b) {
    const float d = Half(b);
    return {d, kMin ? Half(b + 2) : -8.0f * d};
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const Head32& h) {
    return {h.d, h.d, h.a};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const Head32&, __m256* q) {
    const uint8_t* qs = b + (kMin ? 4 : 2);
    q[0] = _mm256_cvtepi32_ps(Nibbles8<0>(qs));
    q[1] = _mm256_cvtepi32_ps(Nibbles8<1>(qs));
    q[2] = _mm256_cvtepi32_ps(Nibbles8<2>(qs));
    q[3] = _mm256_cvtepi32_ps(Nibbles8<3>(qs));
  }
};

// x = d * q + a, q = nibble | (bit e of qh) << 4: Q5_0 (a = -16d) and Q5_1 (a = m).
template <bool kMin>
struct Q5 {
  static constexpr int kElems = 32, kBytes = kMin ? 24 : 22;
  static constexpr bool kOffset = true;
  static constexpr int kQh = kMin ? 4 : 2, kQs = kQh + 4;
  TESSERA_AVX2_INLINE static Head32 Head(const uint8_t* b) {
    const float d = Half(b);
    return {d, kMin ? Half(b + 2) : -16.0f * d};
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const Head32& h) {
    return {h.d, h.d, h.a};
  }
  template <int C>
  TESSERA_AVX2_INLINE static __m256 One(const uint8_t* qs, __m256i qh) {
    const __m256i shift = _mm256_setr_epi32(8 * C, 8 * C + 1, 8 * C + 2, 8 * C + 3, 8 * C + 4,
                                            8 * C + 5, 8 * C + 6, 8 * C + 7);
    const __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(qh, shift), _mm256_set1_epi32(1));
    return _mm256_cvtepi32_ps(_mm256_or_si256(Nibbles8<C>(qs), _mm256_slli_epi32(bit, 4)));
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const Head32&, __m256* q) {
    uint32_t bits;
    std::memcpy(&bits, b + kQh, 4);
    const __m256i qh = _mm256_set1_epi32(static_cast<int>(bits));
    q[0] = One<0>(b + kQs, qh);
    q[1] = One<1>(b + kQs, qh);
    q[2] = One<2>(b + kQs, qh);
    q[3] = One<3>(b + kQs, qh);
  }
};

// 16 bytes of IQ4 nibbles -> the 32 levels they index (elements 0-15 low nibbles, 16-31 high).
TESSERA_AVX2_INLINE void Iq4Levels32(const uint8_t* qs, __m256* q) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels));
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(v, m4));
  const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(v, 4), m4));
  q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
  q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
  q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
  q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

// IQ4_NL: x = d * level[q].
struct IQ4_NL {
  static constexpr int kElems = 32, kBytes = 18;
  static constexpr bool kOffset = false;
  TESSERA_AVX2_INLINE static Head32 Head(const uint8_t* b) { return {Half(b), 0.0f}; }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const Head32& h) {
    return {h.d, h.d, 0.0f};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const Head32&, __m256* q) {
    Iq4Levels32(b + 2, q);
  }
};

// IQ4_XS: unit J is qs[16J ..] as IQ4_NL, x = d * (ls_J - 32) * level[q] with 6-bit ls_J.
struct IQ4_XS {
  static constexpr int kElems = 256, kBytes = 136;
  static constexpr bool kOffset = false;
  struct HeadK {
    float d[8];
  };
  TESSERA_AVX2_INLINE static HeadK Head(const uint8_t* b) {
    const float d = Half(b);
    HeadK h;
    for (int j = 0; j < 8; ++j) h.d[j] = d * static_cast<float>(Iq4XsScale(b, j));
    return h;
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const HeadK& h) {
    return {h.d[J], h.d[J], 0.0f};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const HeadK&, __m256* q) {
    Iq4Levels32(b + 8 + 16 * J, q);
  }
};

// Q4_K: unit J is the low (J even) or high (J odd) nibbles of qs[32(J/2) ..], x = d*sc*q -
// dmin*m with 6-bit sc, m packed in 12 bytes, unpacked for all eight units at once.
struct Q4_K {
  static constexpr int kElems = 256, kBytes = 144;
  static constexpr bool kOffset = true;
  struct HeadK {
    alignas(32) float d[8];  // d * sc_j
    alignas(32) float a[8];  // -dmin * m_j
  };
  TESSERA_AVX2_INLINE static HeadK Head(const uint8_t* b) {
    // The 12 bytes to sc[0..7] then m[0..7], one byte each (llama.cpp's kmask trick).
    uint32_t u[4];
    std::memcpy(u, b + 4, 12);
    constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
    u[3] = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
    const uint32_t mins_lo = u[1] & k6;
    u[1] = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
    u[2] = mins_lo;
    u[0] &= k6;
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
    HeadK h;
    _mm256_store_ps(
        h.d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), _mm256_set1_ps(Half(b))));
    _mm256_store_ps(h.a,
                    _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))),
                                  _mm256_set1_ps(-Half(b + 2))));
    return h;
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const HeadK& h) {
    return {h.d[J], h.d[J], h.a[J]};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const HeadK&, __m256* q) {
    const uint8_t* qs = b + 16 + 32 * (J / 2);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = Bytes8(qs + 8 * c);
      q[c] = _mm256_cvtepi32_ps(J % 2 == 0 ? _mm256_and_si256(v, _mm256_set1_epi32(0x0F))
                                           : _mm256_srli_epi32(v, 4));
    }
  }
};

// Q2_K: unit J (half J / 4, bit pair J % 4 of qs[32 (J / 4) ..], as Q3_K) with a scale and a
// min per 16 elements: x = d * sc * q - dmin * m. The mins change every 16 elements, finer
// than the 32-element sums the offset term uses, so Decode32 yields finished weights (scale 1).
struct Q2_K {
  static constexpr int kElems = 256, kBytes = 84;
  static constexpr bool kOffset = false;
  struct HeadK {
    float d[16], m[16];  // d * sc_i, dmin * m_i
  };
  TESSERA_AVX2_INLINE static HeadK Head(const uint8_t* b) {
    const float d = Half(b + 80), dmin = Half(b + 82);
    HeadK h;
    for (int i = 0; i < 16; ++i) {
      h.d[i] = d * static_cast<float>(b[i] & 0x0F);
      h.m[i] = dmin * static_cast<float>(b[i] >> 4);
    }
    return h;
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const HeadK&) {
    return {1.0f, 1.0f, 0.0f};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const HeadK& h, __m256* q) {
    constexpr int half = J / 4, shift = 2 * (J % 4);
    for (int c = 0; c < 4; ++c) {
      const int is = 2 * J + c / 2;
      const __m256i v = _mm256_and_si256(_mm256_srli_epi32(Bytes8(b + 16 + 32 * half + 8 * c), shift),
                                         _mm256_set1_epi32(3));
      q[c] = _mm256_fmsub_ps(_mm256_set1_ps(h.d[is]), _mm256_cvtepi32_ps(v), _mm256_set1_ps(h.m[is]));
    }
  }
};

// Q3_K: unit J (half J / 4, bit pair J % 4 of qs[32 (J / 4) ..]) holds 2-bit quants whose
// third bit is bit J of hmask[l], inverted (clear: -4); sixteen 6-bit scales, one per 16.
struct Q3_K {
  static constexpr int kElems = 256, kBytes = 110;
  static constexpr bool kOffset = false;
  struct HeadK {
    float d[16];  // d * (sc_i - 32)
  };
  TESSERA_AVX2_INLINE static HeadK Head(const uint8_t* b) {
    const uint8_t* packed = b + 96;
    const float d = Half(b + 108);
    HeadK h;
    for (int i = 0; i < 16; ++i) h.d[i] = d * static_cast<float>(Q3KScale(packed, i));
    return h;
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const HeadK& h) {
    return {h.d[2 * J], h.d[2 * J + 1], 0.0f};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const HeadK&, __m256* q) {
    constexpr int half = J / 4, shift = 2 * (J % 4);
    for (int c = 0; c < 4; ++c) {
      const __m256i low = _mm256_and_si256(_mm256_srli_epi32(Bytes8(b + 32 + 32 * half + 8 * c), shift),
                                           _mm256_set1_epi32(3));
      const __m256i bit = _mm256_and_si256(_mm256_srli_epi32(Bytes8(b + 8 * c), J), _mm256_set1_epi32(1));
      // q - 4 * !bit = q - 4 + 4 * bit
      q[c] = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_sub_epi32(low, _mm256_set1_epi32(4)),
                                                 _mm256_slli_epi32(bit, 2)));
    }
  }
};

// Q5_K: Q4_K's scales and nibbles (at b + 48), plus the 5th bit of element l of unit J in
// bit J of qh[l] (qh at b + 16).
struct Q5_K : Q4_K {
  static constexpr int kBytes = 176;
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const HeadK&, __m256* q) {
    const uint8_t* qs = b + 48 + 32 * (J / 2);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = Bytes8(qs + 8 * c);
      const __m256i lo = J % 2 == 0 ? _mm256_and_si256(v, _mm256_set1_epi32(0x0F)) : _mm256_srli_epi32(v, 4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(Bytes8(b + 16 + 8 * c), J), _mm256_set1_epi32(1));
      q[c] = _mm256_cvtepi32_ps(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)));
    }
  }
};

// Q6_K: unit J = 4h + g covers elements 128h + 32g + [0, 32): low 4 bits from
// ql[64h + 32(g&1) + l] (low nibble for g < 2, high otherwise), high 2 bits from bits 2g of
// qh[32h + l]; x = d * sc[2J + l/16] * (q - 32). Decoded 32 bytes at a time, then widened.
struct Q6_K {
  static constexpr int kElems = 256, kBytes = 210;
  static constexpr bool kOffset = false;
  struct HeadK {
    alignas(32) float d[16];  // d * sc_i
  };
  TESSERA_AVX2_INLINE static HeadK Head(const uint8_t* b) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const __m256 d = _mm256_set1_ps(Half(b + 208));
    HeadK h;
    _mm256_store_ps(h.d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), d));
    _mm256_store_ps(
        h.d + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))), d));
    return h;
  }
  template <int J>
  TESSERA_AVX2_INLINE static UnitScale Scales(const HeadK& h) {
    return {h.d[2 * J], h.d[2 * J + 1], 0.0f};
  }
  template <int J>
  TESSERA_AVX2_INLINE static void Decode32(const uint8_t* b, const HeadK&, __m256* q) {
    constexpr int h = J / 4, g = J % 4;
    const __m256i ql =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h + 32 * (g & 1)));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i lo = _mm256_and_si256(g < 2 ? ql : _mm256_srli_epi16(ql, 4), m4);
    __m256i hi;  // bits 2g, 2g+1 of qh moved to bits 4, 5 (16-bit shifts; the mask drops spill)
    if constexpr (g < 2) {
      hi = _mm256_slli_epi16(qh, 4 - 2 * g);
    } else {
      hi = _mm256_srli_epi16(qh, 2 * g - 4);
    }
    const __m256i qs = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_and_si256(hi, m30)),
                                       _mm256_set1_epi8(32));  // q - 32, signed bytes
    const __m128i q0 = _mm256_castsi256_si128(qs), q1 = _mm256_extracti128_si256(qs, 1);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8)));
  }
};

// ---- Fused decode + FMA: one row of w against NT tokens ----------------------------------
//
// Over a unit, w · x = d * (q · x) + a * sum(x): q · x takes 4 FMAs per token, one more
// scales it into the accumulator (two for Q6_K's half-unit scales), and a * sum(x) uses the
// unit sums of x (xsum) the caller computed once per token. Units alternate between
// accumulator chains so consecutive units do not wait on each other's FMA.

// Chains per token: 2, and 4 for Q6_K (two scaled FMAs per unit) when NT <= 2.
template <typename B, int NT>
constexpr int kChains = !B::kOffset && B::kElems == 256 && NT <= 2 ? 4 : 2;

template <typename B, int NT, int P, int J = 0>
TESSERA_AVX2_INLINE void DotUnits(const uint8_t* wb, const decltype(B::Head(nullptr))& head,
                                  const float* xb, const float* sb, int64_t xs, int64_t ss,
                                  __m256 (*acc)[NT], float (*corr)[NT]) {
  if constexpr (J < B::kElems / 32) {
    constexpr int chain = (P + J) % 2;
    __m256 q[4];
    B::template Decode32<J>(wb, head, q);
    const UnitScale u = B::template Scales<J>(head);
    const __m256 d0 = _mm256_set1_ps(u.d0), d1 = _mm256_set1_ps(u.d1);
    for (int t = 0; t < NT; ++t) {
      const float* x = xb + t * xs + 32 * J;
      __m256 s0 = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
      s0 = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), s0);
      if constexpr (B::kOffset || B::kElems == 32) {  // one scale per unit
        s0 = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x + 16), s0);
        s0 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), s0);
        acc[chain][t] = _mm256_fmadd_ps(d0, s0, acc[chain][t]);
      } else {
        __m256 s1 = _mm256_mul_ps(q[2], _mm256_loadu_ps(x + 16));
        s1 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), s1);
        constexpr int c0 = kChains<B, NT> == 4 ? 2 * chain : 0;
        acc[c0][t] = _mm256_fmadd_ps(d0, s0, acc[c0][t]);
        acc[c0 + 1][t] = _mm256_fmadd_ps(d1, s1, acc[c0 + 1][t]);
      }
      if constexpr (B::kOffset) corr[chain][t] += u.a * sb[t * ss + J];
    }
    DotUnits<B, NT, P, J + 1>(wb, head, xb, sb, xs, ss, acc, corr);
  }
}

template <typename B, int NT, int P>
TESSERA_AVX2_INLINE void DotBlock(const uint8_t* wb, const float* xb, const float* sb, int64_t xs,
                                  int64_t ss, __m256 (*acc)[NT], float (*corr)[NT]) {
  const auto head = B::Head(wb);
  DotUnits<B, NT, P>(wb, head, xb, sb, xs, ss, acc, corr);
}

template <typename B, int NT>
TESSERA_AVX2_INLINE void DotRowQ(float* out, int64_t os, const uint8_t* w, const float* x,
                                 const float* xsum, int64_t xs, int64_t k) {
  __m256 acc[kChains<B, NT>][NT];
  float corr[2][NT];
  for (int t = 0; t < NT; ++t) {
    for (auto& a : acc) a[t] = _mm256_setzero_ps();
    corr[0][t] = corr[1][t] = 0;
  }
  constexpr int kUnits = B::kElems / 32;
  const int64_t ss = k / 32, nb = k / B::kElems;
  int64_t b = 0;
  if constexpr (kUnits == 1) {  // one unit per block: alternate chains over block pairs
    for (; b + 1 < nb; b += 2) {
      DotBlock<B, NT, 0>(w + b * B::kBytes, x + b * 32, xsum + b, xs, ss, acc, corr);
      DotBlock<B, NT, 1>(w + (b + 1) * B::kBytes, x + (b + 1) * 32, xsum + b + 1, xs, ss, acc,
                         corr);
    }
  }
  for (; b < nb; ++b) {
    DotBlock<B, NT, 0>(w + b * B::kBytes, x + b * B::kElems, xsum + b * kUnits, xs, ss, acc, corr);
  }
  for (int t = 0; t < NT; ++t) {
    __m256 sum = acc[0][t];
    for (int c = 1; c < kChains<B, NT>; ++c) sum = _mm256_add_ps(sum, acc[c][t]);
    out[t * os] = HSum(sum) + (corr[0][t] + corr[1][t]);
  }
}

template <typename B, int J = 0>
TESSERA_AVX2_INLINE void DequantUnits(float* out, const uint8_t* wb,
                                      const decltype(B::Head(nullptr))& head) {
  if constexpr (J < B::kElems / 32) {
    __m256 q[4];
    B::template Decode32<J>(wb, head, q);
    const UnitScale u = B::template Scales<J>(head);
    const __m256 a = _mm256_set1_ps(u.a);
    for (int c = 0; c < 4; ++c) {
      const __m256 d = _mm256_set1_ps(c < 2 ? u.d0 : u.d1);
      _mm256_storeu_ps(out + 32 * J + 8 * c, _mm256_fmadd_ps(q[c], d, a));
    }
    DequantUnits<B, J + 1>(out, wb, head);
  }
}

template <typename B>
TESSERA_AVX2 void DequantRowQ(float* out, const uint8_t* w, int64_t k) {
  for (int64_t b = 0; b < k / B::kElems; ++b) {
    const uint8_t* wb = w + b * B::kBytes;
    DequantUnits<B>(out + b * B::kElems, wb, B::Head(wb));
  }
}

// ---- F32 / F16 / BF16: 8 weights to f32 in a register; any k (scalar tail) --------------

struct F32 {
  TESSERA_AVX2_INLINE static __m256 Load8(const uint8_t* w, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i);
  }
  static float Load1(const uint8_t* w, int64_t i) {
    float f;
    std::memcpy(&f, w + 4 * i, 4);
    return f;
  }
};
struct F16 {
  TESSERA_AVX2_INLINE static __m256 Load8(const uint8_t* w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
  }
  TESSERA_AVX2_INLINE static float Load1(const uint8_t* w, int64_t i) { return Half(w + 2 * i); }
};
struct BF16 {
  TESSERA_AVX2_INLINE static __m256 Load8(const uint8_t* w, int64_t i) {
    const __m256i v =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static float Load1(const uint8_t* w, int64_t i) {
    uint16_t b;
    std::memcpy(&b, w + 2 * i, 2);
    const uint32_t bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

template <typename L, int NT>
TESSERA_AVX2_INLINE void DotRowFloat(float* out, int64_t os, const uint8_t* w, const float* x,
                                     const float* /*xsum*/, int64_t xs, int64_t k) {
  __m256 a0[NT], a1[NT];
  for (int t = 0; t < NT; ++t) a0[t] = a1[t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256 w0 = L::Load8(w, i), w1 = L::Load8(w, i + 8);
    for (int t = 0; t < NT; ++t) {
      a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * xs + i), a0[t]);
      a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * xs + i + 8), a1[t]);
    }
  }
  for (; i + 8 <= k; i += 8) {
    const __m256 w0 = L::Load8(w, i);
    for (int t = 0; t < NT; ++t)
      a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * xs + i), a0[t]);
  }
  for (int t = 0; t < NT; ++t) {
    float s = HSum(_mm256_add_ps(a0[t], a1[t]));
    for (int64_t j = i; j < k; ++j) s += L::Load1(w, j) * x[t * xs + j];
    out[t * os] = s;
  }
}

template <typename L>
TESSERA_AVX2 void DequantRowFloat(float* out, const uint8_t* w, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) _mm256_storeu_ps(out + i, L::Load8(w, i));
  for (; i < k; ++i) out[i] = L::Load1(w, i);
}

// Runtime nt (1..4) -> compile-time NT; the row loop is inside, so a short row (K = 576 is
// 18 blocks) pays no per-row dispatch.
template <template <int> class K>
TESSERA_AVX2 void ByNt(float* out, int64_t os, const uint8_t* w, int64_t ws, int64_t rows,
                       const float* x, const float* xsum, int64_t xs, int64_t k, int nt) {
  switch (nt) {
    case 1:
      return K<1>::Run(out, os, w, ws, rows, x, xsum, xs, k);
    case 2:
      return K<2>::Run(out, os, w, ws, rows, x, xsum, xs, k);
    case 3:
      return K<3>::Run(out, os, w, ws, rows, x, xsum, xs, k);
    default:
      return K<4>::Run(out, os, w, ws, rows, x, xsum, xs, k);
  }
}
template <typename B>
struct Quant {
  template <int NT>
  struct K {
    TESSERA_AVX2 static void Run(float* out, int64_t os, const uint8_t* w, int64_t ws, int64_t rows,
                                 const float* x, const float* xsum, int64_t xs, int64_t k) {
      for (int64_t r = 0; r < rows; ++r) DotRowQ<B, NT>(out + r, os, w + r * ws, x, xsum, xs, k);
    }
  };
};
template <typename L>
struct Float {
  template <int NT>
  struct K {
    TESSERA_AVX2 static void Run(float* out, int64_t os, const uint8_t* w, int64_t ws, int64_t rows,
                                 const float* x, const float* xsum, int64_t xs, int64_t k) {
      for (int64_t r = 0; r < rows; ++r)
        DotRowFloat<L, NT>(out + r, os, w + r * ws, x, xsum, xs, k);
    }
  };
};

}  // namespace

RowsDotF32Fn Avx2RowsDotF32Act(DType t) {
  switch (t) {
    case DType::kF32:
      return ByNt<Float<F32>::K>;
    case DType::kF16:
      return ByNt<Float<F16>::K>;
    case DType::kBF16:
      return ByNt<Float<BF16>::K>;
    case DType::kQ8_0:
      return ByNt<Quant<Q8_0>::K>;
    case DType::kQ4_0:
      return ByNt<Quant<Q4<false>>::K>;
    case DType::kQ4_1:
      return ByNt<Quant<Q4<true>>::K>;
    case DType::kQ5_0:
      return ByNt<Quant<Q5<false>>::K>;
    case DType::kQ4_K:
      return ByNt<Quant<Q4_K>::K>;
    case DType::kQ6_K:
      return ByNt<Quant<Q6_K>::K>;
    case DType::kQ5_1:
      return ByNt<Quant<Q5<true>>::K>;
    case DType::kQ2_K:
      return ByNt<Quant<Q2_K>::K>;
    case DType::kQ3_K:
      return ByNt<Quant<Q3_K>::K>;
    case DType::kQ5_K:
      return ByNt<Quant<Q5_K>::K>;
    case DType::kIQ4_NL:
      return ByNt<Quant<IQ4_NL>::K>;
    case DType::kIQ4_XS:
      return ByNt<Quant<IQ4_XS>::K>;
    case DType::kU8:
    case DType::kI32:
      return nullptr;  // payload types: MatMul refuses them
  }
  return nullptr;  // unreachable: every enumerator is handled above
}

DequantizeRowFn Avx2DequantizeRow(DType t) {
  switch (t) {
    case DType::kF32:
      return DequantRowFloat<F32>;
    case DType::kF16:
      return DequantRowFloat<F16>;
    case DType::kBF16:
      return DequantRowFloat<BF16>;
    case DType::kQ8_0:
      return DequantRowQ<Q8_0>;
    case DType::kQ4_0:
      return DequantRowQ<Q4<false>>;
    case DType::kQ4_1:
      return DequantRowQ<Q4<true>>;
    case DType::kQ5_0:
      return DequantRowQ<Q5<false>>;
    case DType::kQ4_K:
      return DequantRowQ<Q4_K>;
    case DType::kQ6_K:
      return DequantRowQ<Q6_K>;
    case DType::kQ5_1:
      return DequantRowQ<Q5<true>>;
    case DType::kQ2_K:
      return DequantRowQ<Q2_K>;
    case DType::kQ3_K:
      return DequantRowQ<Q3_K>;
    case DType::kQ5_K:
      return DequantRowQ<Q5_K>;
    case DType::kIQ4_NL:
      return DequantRowQ<IQ4_NL>;
    case DType::kIQ4_XS:
      return DequantRowQ<IQ4_XS>;
    case DType::kU8:
    case DType::kI32:
      return nullptr;  // payload types: MatMul refuses them
  }
  return nullptr;  // unreachable: every enumerator is handled above
}

}  // namespace tessera::kernels::internal
