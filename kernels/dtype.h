// Element types of weight tensors, and their storage layout.
//
// Quantized types are stored in blocks of `BlockElems()` elements taking `BlockBytes()`
// bytes, laid out as llama.cpp's ggml defines them. A row of a quantized matrix is a whole
// number of blocks; a tensor whose innermost dimension is not a multiple of the block size
// cannot be stored in that type. kU8 and kI32 are not weight types: they type byte and
// integer payloads (step plans, token ids, counters) handed to communicators, and no weight
// reader, kernel or DTypeFromName() produces or takes them. Every function here is pure and
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include "absl/strings/string_view.h"

namespace tessera::kernels {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ4_K,
  kQ6_K,
  kQ5_1,
  kQ2_K,
  kQ3_K,
  kQ5_K,
  kIQ4_NL,
  kIQ4_XS,
  kU8,   // payloads only (see above)
  kI32,  // payloads only; the last enumerator (kNumDTypes below)
};
// How many DType values there are: the size of a table indexed by DType.
inline constexpr int kNumDTypes = static_cast<int>(DType::kI32) + 1;

struct DTypeInfo {
  absl::string_view name;  // as llama.cpp and safetensors spell it: "F32", "Q4_K", ...
  int64_t block_elems;    // 1 for plain types
  int64_t block_bytes;    // bytes of one block
  bool quantized;
};

// The layout of `t`.
constexpr DTypeInfo Info(DType t) {
  switch (t) {
    case DType::kF32: return {"F32", 1, 4, false};
    case DType::kF16: return {"F16", 1, 2, false};
    case DType::kBF16: return {"BF16", 1, 2, false};
    case DType::kQ8_0: return {"Q8_0", 32, 34, true};
    case DType::kQ4_0: return {"Q4_0", 32, 18, true};
    case DType::kQ4_1: return {"Q4_1", 32, 20, true};
    case DType::kQ5_0: return {"Q5_0", 32, 22, true};
    case DType::kQ4_K: return {"Q4_K", 256, 144, true};
    case DType::kQ6_K: return {"Q6_K", 256, 210, true};
    case DType::kQ5_1: return {"Q5_1", 32, 24, true};
    case DType::kQ2_K: return {"Q2_K", 256, 84, true};
    case DType::kQ3_K: return {"Q3_K", 256, 110, true};
    case DType::kQ5_K: return {"Q5_K", 256, 176, true};
    case DType::kIQ4_NL: return {"IQ4_NL", 32, 18, true};
    case DType::kIQ4_XS: return {"IQ4_XS", 256, 136, true};
    case DType::kU8: return {"U8", 1, 1, false};
    case DType::kI32: return {"I32", 1, 4, false};
  }
  return {"?", 1, 1, false};  // unreachable: every enumerator is handled above
}

constexpr absl::string_view Name(DType t) { return Info(t).name; }

// Byte offsets, within one block of a quantized type, of its f16 fields (scale d, min m or
// dmin), -1 where there is none: what makes a block of random bytes valid when they are finite
// (benchmarks and tests fill blocks that way; every bit pattern of the quants is valid).
struct HalfFields {
  int16_t at[2] = {-1, -1};
};
constexpr HalfFields HalfFieldsOf(DType t) {
  switch (t) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kIQ4_NL:
    case DType::kIQ4_XS: return {{0, -1}};
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K: return {{0, 2}};
    case DType::kQ2_K: return {{80, 82}};
    case DType::kQ3_K: return {{108, -1}};
    case DType::kQ6_K: return {{208, -1}};
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kU8:
    case DType::kI32: return {};
  }
  return {};
}

// Whether weights may have type `t` (every type but the payload types kU8 and kI32).
constexpr bool IsWeightType(DType t) { return t != DType::kU8 && t != DType::kI32; }

// The weight type named `name` ("F32", "bf16", "Q4_K", ...; case-insensitive), if any;
// never a payload type.
std::optional<DType> DTypeFromName(absl::string_view name);

// Bytes taken by `n` elements of type `t`, or nullopt if `n` is negative, is not a whole
// number of blocks, or the byte count overflows int64.
std::optional<int64_t> BytesFor(DType t, int64_t n);

}  // namespace tessera::kernels
