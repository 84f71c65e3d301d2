// Fuzz target: safetensors header and file parser (runtime/model/safetensors.h), then every
// tensor it reports, read through its data view and converted to f32 one row at a time.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dequant.h"
#include "kernels/dtype.h"
#include "runtime/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tessera::SafetensorsFile::Parse(std::span<const uint8_t>(data, size),
                                              "fuzz.safetensors");
  if (!file.ok()) return 0;
  const tessera::SafetensorsFile& f = **file;
  volatile size_t sink = 0;
  for (const auto& [key, value] : f.metadata()) sink = sink + key.size() + value.size();
  std::vector<float> row;
  for (const tessera::TensorInfo& t : f.tensors()) {
    if (f.FindTensor(t.name) != &t) __builtin_trap();  // names are unique
    if (t.data.size() != static_cast<size_t>(t.bytes)) __builtin_trap();
    // A scalar (shape []) is one row of one element.
    const int64_t n = t.shape.empty() ? 1 : t.shape.back();
    const std::optional<int64_t> bytes = tessera::kernels::BytesFor(t.type, n);
    if (!bytes || *bytes > static_cast<int64_t>(t.data.size())) continue;
    row.resize(static_cast<size_t>(n));
    tessera::kernels::DequantizeRow(row.data(), t.data.data(), t.type, n);
    for (float x : row) sink = sink + (x == x);
  }
  (void)sink;
  return 0;
}
