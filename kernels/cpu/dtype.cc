#include "kernels/dtype.h"

#include <array>
#include <limits>

#include "absl/strings/match.h"

namespace tessera::kernels {

std::optional<DType> DTypeFromName(absl::string_view name) {
  static constexpr std::array kAll = {DType::kF32,  DType::kF16,  DType::kBF16,
                                      DType::kQ8_0, DType::kQ4_0, DType::kQ4_1,
                                      DType::kQ5_0, DType::kQ4_K, DType::kQ6_K,
                                      DType::kQ5_1, DType::kQ2_K, DType::kQ3_K,
                                      DType::kQ5_K, DType::kIQ4_NL, DType::kIQ4_XS};
  for (DType t : kAll) {
    if (absl::EqualsIgnoreCase(Name(t), name)) return t;
  }
  return std::nullopt;
}

std::optional<int64_t> BytesFor(DType t, int64_t n) {
  const DTypeInfo info = Info(t);
  if (n < 0 || n % info.block_elems != 0) return std::nullopt;
  const int64_t blocks = n / info.block_elems;
  if (blocks > std::numeric_limits<int64_t>::max() / info.block_bytes) return std::nullopt;
  return blocks * info.block_bytes;
}

}  // namespace tessera::kernels
