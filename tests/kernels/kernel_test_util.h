// Test helpers for kernel conformance tests: seeded random inputs (never zeros) and small
// reference quantizers that produce weights in each DType's block layout.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/dequant.h"
#include "kernels/dtype.h"

namespace tessera::kernels::testing {

inline constexpr DType kAllTypes[] = {DType::kF32,  DType::kF16,    DType::kBF16,  DType::kQ8_0,
                                      DType::kQ4_0, DType::kQ4_1,   DType::kQ5_0,  DType::kQ4_K,
                                      DType::kQ6_K, DType::kQ5_1,   DType::kQ2_K,  DType::kQ3_K,
                                      DType::kQ5_K, DType::kIQ4_NL, DType::kIQ4_XS};

// Uniform in [lo, hi], never exactly zero.
inline std::vector<float> RandomFloats(int64_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) {
    do x = dist(rng);
    while (x == 0.0f);
  }
  return v;
}

inline void PutU16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

inline uint16_t FloatToBf16(float f) {  // round to nearest even (finite inputs)
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<uint16_t>((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

// The signed value of largest magnitude in x[0, n).
inline float SignedAbsMax(const float* x, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  }
  return m;
}

// Quantizes one row of k floats (k a whole number of blocks) as llama.cpp's reference
// quantizers do (round to nearest). K-quants, Q5_1 and the IQ4 types get random quants with
// small sane scales:
// every bit pattern is a valid block, and the tests compare kernels on the same bytes.
inline void QuantizeRow(uint8_t* out, const float* x, DType t, int64_t k, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  switch (t) {
    case DType::kF32:
      std::memcpy(out, x, k * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < k; ++i) PutU16(out + 2 * i, FloatToHalf(x[i]));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < k; ++i) PutU16(out + 2 * i, FloatToBf16(x[i]));
      return;
    case DType::kQ8_0:
      for (int64_t b = 0; b < k / 32; ++b, x += 32, out += 34) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127, id = d ? 1 / d : 0;
        PutU16(out, FloatToHalf(d));
        for (int i = 0; i < 32; ++i) out[2 + i] = static_cast<uint8_t>(std::lround(x[i] * id));
      }
      return;
    case DType::kQ4_0:
      for (int64_t b = 0; b < k / 32; ++b, x += 32, out += 18) {
        const float d = SignedAbsMax(x, 32) / -8, id = d ? 1 / d : 0;
        PutU16(out, FloatToHalf(d));
        for (int j = 0; j < 16; ++j) {
          const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
          const int hi = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
          out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < k / 32; ++b, x += 32, out += 20) {
        const float mn = *std::min_element(x, x + 32), mx = *std::max_element(x, x + 32);
        const float d = (mx - mn) / 15, id = d ? 1 / d : 0;
        PutU16(out, FloatToHalf(d));
        PutU16(out + 2, FloatToHalf(mn));
        for (int j = 0; j < 16; ++j) {
          const int lo = std::min(15, static_cast<int>((x[j] - mn) * id + 0.5f));
          const int hi = std::min(15, static_cast<int>((x[j + 16] - mn) * id + 0.5f));
          out[4 + j] = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
      return;
    case DType::kQ5_0:
      for (int64_t b = 0; b < k / 32; ++b, x += 32, out += 22) {
        const float d = SignedAbsMax(x, 32) / -16, id = d ? 1 / d : 0;
        PutU16(out, FloatToHalf(d));
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
          const int lo = std::min(31, static_cast<int>(x[j] * id + 16.5f));
          const int hi = std::min(31, static_cast<int>(x[j + 16] * id + 16.5f));
          out[6 + j] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
          qh |= static_cast<uint32_t>(lo >> 4) << j;
          qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
        }
        std::memcpy(out + 2, &qh, 4);
      }
      return;
    case DType::kQ4_K:
      for (int64_t b = 0; b < k / 256; ++b, out += 144) {
        PutU16(out, FloatToHalf(std::uniform_real_distribution<float>(0.001f, 0.004f)(rng)));
        PutU16(out + 2, FloatToHalf(std::uniform_real_distribution<float>(0.001f, 0.004f)(rng)));
        for (int i = 4; i < 144; ++i) out[i] = static_cast<uint8_t>(byte(rng));
      }
      return;
    case DType::kQ6_K:
      for (int64_t b = 0; b < k / 256; ++b, out += 210) {
        for (int i = 0; i < 192; ++i) out[i] = static_cast<uint8_t>(byte(rng));
        std::uniform_int_distribution<int> scale(-40, 40);
        for (int i = 192; i < 208; ++i) {
          int s;
          do s = scale(rng);
          while (s == 0);
          out[i] = static_cast<uint8_t>(static_cast<int8_t>(s));
        }
        PutU16(out + 208, FloatToHalf(std::uniform_real_distribution<float>(0.0005f, 0.002f)(rng)));
      }
      return;
    case DType::kQ5_1:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ5_K:
    case DType::kIQ4_NL:
    case DType::kIQ4_XS: {
      // Random quants; every f16 field (d, m, dmin) a small sane value.
      const DTypeInfo info = Info(t);
      for (int64_t b = 0; b < k / info.block_elems; ++b, out += info.block_bytes) {
        for (int64_t i = 0; i < info.block_bytes; ++i) out[i] = static_cast<uint8_t>(byte(rng));
        for (int h : HalfFieldsOf(t).at) {
          if (h >= 0) PutU16(out + h, FloatToHalf(std::uniform_real_distribution<float>(0.0005f, 0.003f)(rng)));
        }
      }
      return;
    }
    case DType::kU8:
    case DType::kI32:
      break;  // payload types: no weight has them
  }
}

// A random [rows, k] matrix stored as `t`.
inline std::vector<uint8_t> RandomMatrix(DType t, int64_t rows, int64_t k, uint32_t seed) {
  const std::vector<float> f = RandomFloats(rows * k, seed);
  const int64_t row_bytes = *BytesFor(t, k);
  std::vector<uint8_t> out(rows * row_bytes);
  std::mt19937 rng(seed ^ 0x9E3779B9u);
  for (int64_t r = 0; r < rows; ++r) QuantizeRow(out.data() + r * row_bytes, f.data() + r * k, t, k, rng);
  return out;
}

// ||a - b|| / ||b||
inline double RelNormError(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// max_i |a_i - b_i| / max_i |b_i|
inline double MaxRelError(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

// `v` (row-major, `dims`, innermost a whole number of blocks) stored as `type`, each row
// quantized with QuantizeRow. Deterministic for every type but the K-quants.
inline OwnedTensor Stored(DType type, const std::vector<int64_t>& dims, const float* v,
                          uint32_t seed = 1) {
  OwnedTensor t(type, dims);
  const int64_t cols = dims.back(), rows = t.cview().rows();
  const int64_t row_bytes = *BytesFor(type, cols);
  std::mt19937 rng(seed);
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(t.as<uint8_t>() + r * row_bytes, v + r * cols, type, cols, rng);
  }
  return t;
}

// What the kernels see: a stored tensor decoded to f32.
inline std::vector<float> Decoded(ConstTensor t) {
  std::vector<float> out(t.numel());
  const int64_t row_bytes = *BytesFor(t.type, t.cols());
  for (int64_t r = 0; r < t.rows(); ++r) {
    DequantizeRow(out.data() + r * t.cols(), static_cast<const uint8_t*>(t.data) + r * row_bytes,
                  t.type, t.cols());
  }
  return out;
}

}  // namespace tessera::kernels::testing
