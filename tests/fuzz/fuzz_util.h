// Helpers shared by the tokenizer fuzz targets. Kept tiny so the targets adapt to API
// changes in one place.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace tessera::fuzz {

// The ids of an Encode result, whether Encode returns the ids or a StatusOr of them (an
// error is fine for fuzzed input; it gives no ids).
template <typename R>
std::vector<int32_t> Ids(R&& r) {
  if constexpr (std::is_same_v<std::decay_t<R>, std::vector<int32_t>>) {
    return std::forward<R>(r);
  } else {
    return r.ok() ? *std::forward<R>(r) : std::vector<int32_t>{};
  }
}

}  // namespace tessera::fuzz
