// Facts of the GGUF block layouts that the scalar dequantization (dequant.cc) and the AVX2
// decoders (matmul_avx2_f32act.cc) both read, written once. Not a public API.
#pragma once

#include <cstdint>

namespace tessera::kernels::internal {

// The 16 non-uniform levels that IQ4_NL and IQ4_XS quants index.
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// Q3_K's scale i (0..15), already offset by -32, from the 12 packed bytes at `packed`: the
// low 4 bits in byte i % 8 (nibble i / 8), the high 2 bits in byte 8 + i % 4 (pair i / 4).
inline int Q3KScale(const uint8_t* packed, int i) {
  const int lo = (packed[i % 8] >> (4 * (i / 8))) & 0x0F;
  const int hi = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

// IQ4_XS's scale of sub-block ib (0..7), already offset by -32, from the block at `b`
// (f16 d; u16 scales_h, 2 high bits per sub-block; u8 scales_l[4], 4 low bits each).
inline int Iq4XsScale(const uint8_t* b, int ib) {
  const int scales_h = b[2] | (b[3] << 8);
  const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((scales_h >> (2 * ib)) & 3) << 4);
  return ls - 32;
}

}  // namespace tessera::kernels::internal
