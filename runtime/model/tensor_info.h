// Where one stored tensor lies in a model file. Shared by the GGUF and safetensors readers.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/dtype.h"

namespace tessera {

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // outermost first, as PyTorch prints it
  kernels::DType type;
  uint64_t file_offset = 0;  // absolute offset of the data in its file
  int64_t elements = 0;
  int64_t bytes = 0;
  std::span<const uint8_t> data;  // view of the bytes in the mapped file
};

}  // namespace tessera
