// Each quantized type: one block built by hand, expected values worked out by hand from the
// block layout (llama.cpp ggml-common.h), not from our own dequantizer; and every type's
// random blocks against gguf-py's dequantization of the same bytes (tests/data/quants).
#include "kernels/dequant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kernels/cpu/simd.h"

namespace tessera::kernels {
namespace {

std::vector<float> Dequant(DType t, const std::vector<uint8_t>& block, int64_t n) {
  EXPECT_EQ(BytesFor(t, n), static_cast<int64_t>(block.size()));
  std::vector<float> out(n);
  DequantizeRow(out.data(), block.data(), t, n);
  return out;
}

void PutU16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = v & 0xFF;
  b[at + 1] = v >> 8;
}

TEST(Dequant, HalfAndBfloat) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), 5.9604644775390625e-08f);  // smallest subnormal, 2^-24
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7C00)));
  EXPECT_EQ(Bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xC0A0), -5.0f);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(0.333333f), 0x3555);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // rounds past the largest half
  EXPECT_EQ(FloatToHalf(5.9604644775390625e-08f), 0x0001);
  for (uint32_t h = 0; h < 0x7C00; ++h) {  // every finite positive half round-trips
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h);
  }
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie: to even
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie: to even
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x7F7FFFFFu)), 0x7F80);  // past the largest: inf
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::bit_cast<float>(0x7F800001u)))));  // sNaN
}

// The row conversions (AVX2 + F16C and portable) give the scalar conversions' bits for
// every non-NaN value: all 65536 16-bit patterns widened, and f32 values around every
// rounding boundary narrowed.
TEST(Dequant, RowConversionsMatchScalar) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f32;
  for (uint32_t i = 0; i < 65536; ++i) {
    for (uint32_t low : {0u, 1u, 0xFFFu, 0x1000u, 0x1001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) {
      const float f = std::bit_cast<float>((i << 16) | low);
      if (!std::isnan(f)) f32.push_back(f);
    }
  }
  for (bool portable : {false, true}) {
    simd::ForcePortableForTesting(portable);
    std::vector<float> wide(all.size());
    simd::HalfToFloatRow(wide.data(), all.data(), static_cast<int64_t>(all.size()));
    for (uint32_t i = 0; i < all.size(); ++i) {
      const float want = HalfToFloat(all[i]);
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(wide[i])) << i;
      } else {
        ASSERT_EQ(std::bit_cast<uint32_t>(wide[i]), std::bit_cast<uint32_t>(want)) << i;
      }
    }
    simd::Bf16ToFloatRow(wide.data(), all.data(), static_cast<int64_t>(all.size()));
    for (uint32_t i = 0; i < all.size(); ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(wide[i]), static_cast<uint32_t>(i) << 16) << i;
    }
    std::vector<uint16_t> half(f32.size()), bf(f32.size());
    simd::FloatToHalfRow(half.data(), f32.data(), static_cast<int64_t>(f32.size()));
    simd::FloatToBf16Row(bf.data(), f32.data(), static_cast<int64_t>(f32.size()));
    for (size_t i = 0; i < f32.size(); ++i) {
      ASSERT_EQ(half[i], FloatToHalf(f32[i])) << f32[i] << " portable " << portable;
      ASSERT_EQ(bf[i], FloatToBf16(f32[i])) << f32[i];
    }
  }
  simd::ForcePortableForTesting(false);
}

TEST(Dequant, Q8_0) {
  std::vector<uint8_t> b(34);
  PutU16(b, 0, 0x3800);  // d = 0.5
  for (int i = 0; i < 32; ++i) b[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
  const auto x = Dequant(DType::kQ8_0, b, 32);
  EXPECT_EQ(x[0], -8.0f);
  EXPECT_EQ(x[16], 0.0f);
  EXPECT_EQ(x[31], 7.5f);
}

TEST(Dequant, Q4_0) {
  std::vector<uint8_t> b(18);
  PutU16(b, 0, 0x4000);  // d = 2
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto x = Dequant(DType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(x[j], 2.0f * (j - 8)) << j;         // low nibbles: elements 0..15
    EXPECT_EQ(x[j + 16], 2.0f * (7 - j)) << j;    // high nibbles: elements 16..31
  }
}

TEST(Dequant, Q4_1) {
  std::vector<uint8_t> b(20);
  PutU16(b, 0, 0x3400);  // d = 0.25
  PutU16(b, 2, 0xBC00);  // m = -1
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (3 << 4));
  const auto x = Dequant(DType::kQ4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(x[j], 0.25f * j - 1.0f);
    EXPECT_EQ(x[j + 16], -0.25f);
  }
}

TEST(Dequant, Q5_0) {
  std::vector<uint8_t> b(22);
  PutU16(b, 0, 0x3C00);  // d = 1
  // qh: fifth bit set for elements 0..15 and for element 31.
  const uint32_t qh = 0x0000FFFFu | (1u << 31);
  for (int k = 0; k < 4; ++k) b[2 + k] = (qh >> (8 * k)) & 0xFF;
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto x = Dequant(DType::kQ5_0, b, 32);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(x[j], static_cast<float>(j)) << j;  // (j+16)-16
  for (int j = 0; j < 15; ++j) EXPECT_EQ(x[16 + j], static_cast<float>(-1 - j)) << j;
  EXPECT_EQ(x[31], 0.0f);  // (0 + 16) - 16
}

TEST(Dequant, Q4_K) {
  std::vector<uint8_t> b(144);
  PutU16(b, 0, 0x3C00);  // d = 1
  PutU16(b, 2, 0x3800);  // dmin = 0.5
  uint8_t* s = &b[4];
  // Sub-blocks 0..3: scale in s[j] bits 0..5, min in s[j+4] bits 0..5.
  s[0] = 1 | 0x40;  // bit 6 is bit 4 of sub-block 4's scale
  s[1] = 2;
  s[2] = 3;
  s[3] = 4;
  s[4] = 0 | 0x80;  // bits 6..7 = 2: bits 4..5 of sub-block 4's min
  s[5] = 1;
  s[6] = 2;
  s[7] = 3;
  // Sub-blocks 4..7: scale low bits in s[j+4] & 0xF, min low bits in s[j+4] >> 4.
  s[8] = 0x21;
  s[9] = 0x43;
  s[10] = 0x65;
  s[11] = 0x87;
  const float sc[8] = {1, 2, 3, 4, 1 + 16, 3, 5, 7};
  const float mn[8] = {0, 1, 2, 3, 2 + 32, 4, 6, 8};
  for (int l = 0; l < 128; ++l) b[16 + l] = static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4));
  const auto x = Dequant(DType::kQ4_K, b, 256);
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      const int lo = l % 16, hi = 15 - l % 16;
      EXPECT_EQ(x[64 * g + l], sc[2 * g] * lo - 0.5f * mn[2 * g]) << g << " " << l;
      EXPECT_EQ(x[64 * g + 32 + l], sc[2 * g + 1] * hi - 0.5f * mn[2 * g + 1]) << g << " " << l;
    }
  }
}

TEST(Dequant, Q6_K) {
  std::vector<uint8_t> b(210);
  for (int i = 0; i < 128; ++i) b[i] = 0x21;        // ql: low nibble 1, high nibble 2
  for (int i = 0; i < 64; ++i) b[128 + i] = 0xE4;   // qh: 2-bit fields 0, 1, 2, 3
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 8));
  PutU16(b, 208, 0x3800);  // d = 0.5
  // Quarter k of each 128-element half takes (ql nibble | qh field k << 4) - 32:
  // k=0: 1|0<<4 = 1; k=1: 1|1<<4 = 17; k=2: 2|2<<4 = 34; k=3: 2|3<<4 = 50.
  const float q[4] = {1 - 32, 17 - 32, 34 - 32, 50 - 32};
  const auto x = Dequant(DType::kQ6_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(x[e], 0.5f * (e / 16 - 8) * q[(e % 128) / 32]) << e;  // one scale per 16
  }
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Dequant, EveryTypeMatchesGgufPy) {
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                  DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                  DType::kIQ4_NL, DType::kIQ4_XS}) {
    const std::string base = std::string(TESSERA_TEST_DATA_DIR) + "/quants/" + std::string(Name(t));
    const std::vector<uint8_t> blocks = ReadFile(base + ".bin");
    const std::vector<uint8_t> want_bytes = ReadFile(base + ".f32");
    const int64_t n = static_cast<int64_t>(want_bytes.size() / 4);
    ASSERT_EQ(BytesFor(t, n), static_cast<int64_t>(blocks.size())) << Name(t);
    std::vector<float> want(n);
    std::memcpy(want.data(), want_bytes.data(), want_bytes.size());
    const std::vector<float> got = Dequant(t, blocks, n);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      // gguf-py computes in numpy f32 (or wider) with its own operation order: one rounding.
      if (std::fabs(got[i] - want[i]) > 1e-6f * std::fabs(want[i]) + 1e-9f && bad++ < 3) {
        ADD_FAILURE() << Name(t) << " element " << i << ": " << got[i] << " vs gguf-py " << want[i];
      }
    }
    EXPECT_EQ(bad, 0) << Name(t);
  }
}

TEST(Dequant, BytesForChecksBlocksAndOverflow) {
  EXPECT_EQ(BytesFor(DType::kQ4_K, 512), 288);
  EXPECT_EQ(BytesFor(DType::kQ4_K, 100), std::nullopt);
  EXPECT_EQ(BytesFor(DType::kF32, -1), std::nullopt);
  EXPECT_EQ(BytesFor(DType::kF32, int64_t{1} << 62), std::nullopt);
  EXPECT_EQ(DTypeFromName("bf16"), DType::kBF16);
  EXPECT_EQ(DTypeFromName("Q9_9"), std::nullopt);
}

}  // namespace
}  // namespace tessera::kernels
