// Writes float32 arrays as NumPy .npy files (format version 1.0, little-endian, C order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tessera::cli {

absl::Status WriteNpyF32(const std::string& path, const std::vector<float>& data,
                         const std::vector<int64_t>& shape);

}  // namespace tessera::cli
