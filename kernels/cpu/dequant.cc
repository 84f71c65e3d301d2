// Scalar dequantization, written to read like the block layouts in llama.cpp's ggml-common.h.
// This is the reference; fast quantized dot products are tested against it. (F16 and BF16
// rows use simd's conversions, which are exact.)
#include "kernels/dequant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant_layout.h"
#include "kernels/cpu/simd.h"

namespace tessera::kernels {
namespace {

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
float LoadHalf(const uint8_t* p) { return HalfToFloat(LoadU16(p)); }

// Q8_0 block (34 bytes): f16 d; int8 q[32].  x = d * q
void BlockQ8_0(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  for (int i = 0; i < 32; ++i) y[i] = d * static_cast<int8_t>(b[2 + i]);
}

// Q4_0 block (18 bytes): f16 d; u8 qs[16]. Element j is the low nibble of qs[j], element
// j+16 the high nibble.  x = d * (q - 8)
void BlockQ4_0(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * ((qs[j] & 0x0F) - 8);
    y[j + 16] = d * ((qs[j] >> 4) - 8);
  }
}

// Q4_1 block (20 bytes): f16 d; f16 m; u8 qs[16].  x = d * q + m
void BlockQ4_1(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const float m = LoadHalf(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (qs[j] & 0x0F) + m;
    y[j + 16] = d * (qs[j] >> 4) + m;
  }
}

// Q5_0 block (22 bytes): f16 d; u32 qh (bit j = 5th bit of element j); u8 qs[16].
// x = d * (q - 16)
void BlockQ5_0(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const uint32_t qh = LoadU32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * (lo - 16);
    y[j + 16] = d * (hi - 16);
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K super-block, packed in 12 bytes.
void ScaleMinK4(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K super-block (144 bytes, 256 elements): f16 d; f16 dmin; u8 scales[12]; u8 qs[128].
// Eight sub-blocks of 32 with 6-bit scale sc and min m:  x = d*sc*q - dmin*m.
// Each 32 bytes of qs hold two sub-blocks: low nibbles first, then high nibbles.
void BlockQ4_K(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const float dmin = LoadHalf(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int sub = 0; sub < 8; sub += 2) {
    int sc0, m0, sc1, m1;
    ScaleMinK4(sub, scales, &sc0, &m0);
    ScaleMinK4(sub + 1, scales, &sc1, &m1);
    for (int l = 0; l < 32; ++l) *y++ = d * sc0 * (q[l] & 0x0F) - dmin * m0;
    for (int l = 0; l < 32; ++l) *y++ = d * sc1 * (q[l] >> 4) - dmin * m1;
    q += 32;
  }
}

// Q6_K super-block (210 bytes, 256 elements): u8 ql[128] (low 4 bits); u8 qh[64] (high 2
// bits); int8 scales[16] (one per 16 elements); f16 d.  x = d * scale * (q - 32)
void BlockQ6_K(float* y, const uint8_t* b) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = LoadHalf(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// Q5_1 block (24 bytes): f16 d; f16 m; u32 qh (bit j = 5th bit of element j); u8 qs[16].
// x = d * q + m
void BlockQ5_1(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const float m = LoadHalf(b + 2);
  const uint32_t qh = LoadU32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * ((qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) + m;
    y[j + 16] = d * ((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) + m;
  }
}

// Q2_K super-block (84 bytes, 256 elements): u8 scales[16] (low nibble scale, high nibble
// min, one pair per 16 elements); u8 qs[64] (2-bit quants); f16 d; f16 dmin.
// x = d * sc * q - dmin * m. Each half (128 elements) reads 32 bytes of qs four times,
// bits 0-1, 2-3, 4-5, 6-7, each pass giving 32 elements (two sixteens, two scales).
void BlockQ2_K(float* y, const uint8_t* b) {
  const uint8_t* sc = b;
  const uint8_t* q = b + 16;
  const float d = LoadHalf(b + 80);
  const float dmin = LoadHalf(b + 82);
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int sixteen = 0; sixteen < 2; ++sixteen, ++sc) {
        const float dl = d * (*sc & 0x0F), ml = dmin * (*sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * ((q[16 * sixteen + l] >> shift) & 3) - ml;
      }
    }
  }
}

// Q3_K super-block (110 bytes, 256 elements): u8 hmask[32] (the 3rd bit, inverted: set
// means +0, clear means -4); u8 qs[64] (low 2 bits, laid out as Q2_K's); u8 scales[12]
// (sixteen 6-bit scales, offset by 32); f16 d.  x = d * (sc - 32) * (q - 4 * !hbit)
void BlockQ3_K(float* y, const uint8_t* b) {
  const uint8_t* hmask = b;
  const uint8_t* q = b + 32;
  const uint8_t* packed = b + 96;
  const float d = LoadHalf(b + 108);
  int scales[16];
  for (int i = 0; i < 16; ++i) scales[i] = internal::Q3KScale(packed, i);
  int is = 0;
  uint8_t bit = 1;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, bit = static_cast<uint8_t>(bit << 1)) {
      for (int sixteen = 0; sixteen < 2; ++sixteen) {
        const float dl = d * scales[is++];
        for (int l = 16 * sixteen; l < 16 * sixteen + 16; ++l) {
          *y++ = dl * (((q[l] >> shift) & 3) - ((hmask[l] & bit) ? 0 : 4));
        }
      }
    }
  }
}

// Q5_K super-block (176 bytes, 256 elements): f16 d; f16 dmin; u8 scales[12] (as Q4_K);
// u8 qh[32] (5th bits: bit 2i / 2i+1 for the i-th pair of sub-blocks); u8 qs[128].
// x = d * sc * q - dmin * m
void BlockQ5_K(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const float dmin = LoadHalf(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48;
  for (int sub = 0; sub < 8; sub += 2, q += 32) {
    int sc0, m0, sc1, m1;
    ScaleMinK4(sub, scales, &sc0, &m0);
    ScaleMinK4(sub + 1, scales, &sc1, &m1);
    const uint8_t lo_bit = static_cast<uint8_t>(1 << sub), hi_bit = static_cast<uint8_t>(2 << sub);
    for (int l = 0; l < 32; ++l) *y++ = d * sc0 * ((q[l] & 0x0F) + ((qh[l] & lo_bit) ? 16 : 0)) - dmin * m0;
    for (int l = 0; l < 32; ++l) *y++ = d * sc1 * ((q[l] >> 4) + ((qh[l] & hi_bit) ? 16 : 0)) - dmin * m1;
  }
}

// IQ4_NL block (18 bytes): f16 d; u8 qs[16] (element j: low nibble of qs[j], j+16: high).
// x = d * level[q]
void BlockIQ4_NL(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * internal::kIq4Levels[b[2 + j] & 0x0F];
    y[j + 16] = d * internal::kIq4Levels[b[2 + j] >> 4];
  }
}

// IQ4_XS super-block (136 bytes, 256 elements): f16 d; u16 scales_h (2 high bits per
// sub-block); u8 scales_l[4] (4 low bits per sub-block); u8 qs[128] (as IQ4_NL, 16 bytes
// per sub-block of 32).  x = d * (ls - 32) * level[q]
void BlockIQ4_XS(float* y, const uint8_t* b) {
  const float d = LoadHalf(b);
  const uint8_t* qs = b + 8;
  for (int ib = 0; ib < 8; ++ib, y += 32, qs += 16) {
    const float dl = d * internal::Iq4XsScale(b, ib);
    for (int j = 0; j < 16; ++j) {
      y[j] = dl * internal::kIq4Levels[qs[j] & 0x0F];
      y[j + 16] = dl * internal::kIq4Levels[qs[j] >> 4];
    }
  }
}

template <void (*Block)(float*, const uint8_t*)>
void Blocks(float* out, const uint8_t* src, int64_t n, int64_t elems, int64_t bytes) {
  for (int64_t i = 0; i < n / elems; ++i) Block(out + i * elems, src + i * bytes);
}

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

float Bf16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToHalf(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t absx = x & 0x7FFFFFFF;
  if (absx >= 0x7F800000u) {  // inf or nan
    return sign | 0x7C00 | (absx > 0x7F800000u ? 0x200 : 0);
  }
  if (absx >= 0x477FF000u) return sign | 0x7C00;  // rounds past the largest half: inf
  if (absx < 0x38800000u) {                        // subnormal half or zero
    const float scaled = std::bit_cast<float>(absx) * 16777216.0f;  // * 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  const uint32_t mant_odd = (absx >> 13) & 1;
  const uint32_t rounded = absx + 0xFFF + mant_odd;
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

uint16_t FloatToBf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFF) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

void DequantizeRow(float* out, const void* src_void, DType type, int64_t n) {
  const auto* src = static_cast<const uint8_t*>(src_void);
  const DTypeInfo info = Info(type);
  switch (type) {
    case DType::kF32:
      std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
    case DType::kBF16: {
      // The row may be unaligned for uint16_t (a GGUF tensor at any offset): convert it in
      // aligned pieces.
      constexpr int64_t kPiece = 256;
      uint16_t piece[kPiece];
      for (int64_t i = 0; i < n; i += kPiece) {
        const int64_t m = std::min(kPiece, n - i);
        std::memcpy(piece, src + 2 * i, static_cast<size_t>(m) * 2);
        if (type == DType::kF16) simd::HalfToFloatRow(out + i, piece, m);
        else simd::Bf16ToFloatRow(out + i, piece, m);
      }
      return;
    }
    case DType::kQ8_0: return Blocks<BlockQ8_0>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ4_0: return Blocks<BlockQ4_0>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ4_1: return Blocks<BlockQ4_1>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ5_0: return Blocks<BlockQ5_0>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ4_K: return Blocks<BlockQ4_K>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ6_K: return Blocks<BlockQ6_K>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ5_1: return Blocks<BlockQ5_1>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ2_K: return Blocks<BlockQ2_K>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ3_K: return Blocks<BlockQ3_K>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kQ5_K: return Blocks<BlockQ5_K>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kIQ4_NL: return Blocks<BlockIQ4_NL>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kIQ4_XS: return Blocks<BlockIQ4_XS>(out, src, n, info.block_elems, info.block_bytes);
    case DType::kU8:
    case DType::kI32:
      break;  // payload types: no weight has them (loaders produce weight types only)
  }
}

void StoreFloatRow(void* dst, DType type, const float* src, int64_t n) {
  switch (type) {
    case DType::kF16: return simd::FloatToHalfRow(static_cast<uint16_t*>(dst), src, n);
    case DType::kBF16: return simd::FloatToBf16Row(static_cast<uint16_t*>(dst), src, n);
    default: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
}

void LoadFloatRow(float* dst, const void* src, DType type, int64_t n) {
  switch (type) {
    case DType::kF16: return simd::HalfToFloatRow(dst, static_cast<const uint16_t*>(src), n);
    case DType::kBF16: return simd::Bf16ToFloatRow(dst, static_cast<const uint16_t*>(src), n);
    default: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
}

}  // namespace tessera::kernels
